package server

import (
	"context"
	"crypto/tls"
	"net"
	"sync"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/internal/broker"
)

// forwarder publishes through another node's native API: the subscription
// coordinator's dead-letter copies and redriven messages for partitions
// that node leads (broker.Forwarder). One client per node address, kept
// until the server closes.
type forwarder struct {
	// tls, when set, gives the TLS configuration of a connection to a
	// node's host (the cluster speaks TLS).
	tls func(host string) *tls.Config

	mu      sync.Mutex
	clients map[string]*client.Client
	closed  bool
}

func (f *forwarder) Publish(ctx context.Context, nodeAddr, topic string, msgs []broker.Message) ([]broker.Result, error) {
	c, err := f.client(nodeAddr)
	if err != nil {
		return nil, err
	}
	cms := make([]client.Message, len(msgs))
	for i, m := range msgs {
		cm := client.Message{ID: m.ID, Key: m.Key, Value: m.Value, Subject: m.Subject, Timestamp: m.Timestamp,
			DeliverAt: m.DeliverAt, Delay: m.Delay, TTL: m.TTL}
		for _, h := range m.Headers {
			cm.Headers = append(cm.Headers, client.Header{Key: h.Key, Value: h.Value})
		}
		if m.Partition >= 0 {
			cm = cm.ToPartition(m.Partition)
		}
		cms[i] = cm
	}
	res, err := c.Publish(ctx, topic, cms...)
	if err != nil {
		return nil, err
	}
	out := make([]broker.Result, len(res))
	for i, r := range res {
		out[i] = broker.Result{Partition: r.Partition, Offset: r.Offset, Duplicate: r.Duplicate}
	}
	return out, nil
}

func (f *forwarder) client(addr string) (*client.Client, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, context.Canceled
	}
	if c := f.clients[addr]; c != nil {
		return c, nil
	}
	var c *client.Client
	var err error
	if f.tls != nil {
		host, _, herr := net.SplitHostPort(addr)
		if herr != nil {
			return nil, herr
		}
		c, err = client.New("https://"+addr, client.WithTLS(f.tls(host)))
	} else {
		c, err = client.New("http://" + addr)
	}
	if err != nil {
		return nil, err
	}
	if f.clients == nil {
		f.clients = map[string]*client.Client{}
	}
	f.clients[addr] = c
	return c, nil
}

// Close closes the clients; later publishes fail.
func (f *forwarder) Close() {
	f.mu.Lock()
	cs := f.clients
	f.clients, f.closed = nil, true
	f.mu.Unlock()
	for _, c := range cs {
		_ = c.Close()
	}
}
