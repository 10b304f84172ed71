package client

import (
	"context"
	"errors"
	"iter"

	"connectrpc.com/connect"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
)

// ReadOption configures a read of a topic (Client.ReadTopic).
type ReadOption struct{ apply func(*readConfig) }

type readConfig struct {
	partition    int32
	onePartition bool
	from         Position
	count        int64
	follow       bool
	errs         []error
}

func (c *readConfig) fail(format string, args ...any) {
	c.errs = append(c.errs, invalidArgument(format, args...))
}

// ReadPartition reads only partition p; by default every partition is
// read. A partition the topic does not have fails the read with
// ErrInvalidArgument.
func ReadPartition(p int32) ReadOption {
	return ReadOption{func(c *readConfig) {
		if p < 0 {
			c.fail("ReadPartition: negative partition %d", p)
		}
		c.partition, c.onePartition = p, true
	}}
}

// ReadFrom is where the read starts in each partition: Earliest (the
// default, also for the zero Position), Latest (only messages published
// from now on), AtTime (the first message at or after the time) or
// AtOffset (clamped to what each partition retains).
func ReadFrom(pos Position) ReadOption {
	return ReadOption{func(c *readConfig) { c.from = pos }}
}

// ReadCount ends the read after n messages; 0 (the default) means no
// limit; negative is ErrInvalidArgument.
func ReadCount(n int64) ReadOption {
	return ReadOption{func(c *readConfig) {
		if n < 0 {
			c.fail("ReadCount: negative count %d", n)
		}
		c.count = n
	}}
}

// ReadFollow keeps the read going at the end of the partitions, yielding
// new messages as they are published, until ReadCount messages were read,
// the context ends or the loop stops; by default the read ends at the end
// offsets the partitions had when it started.
func ReadFollow() ReadOption {
	return ReadOption{func(c *readConfig) { c.follow = true }}
}

// ReadTopic reads the messages of topic without a subscription, for
// debugging and audits: nothing is committed, leased or stored on the
// server, and the topic's subscriptions do not notice. Each range over the
// result is one read:
//
//	for m, err := range c.ReadTopic(ctx, "orders", client.ReadFrom(client.AtTime(t)), client.ReadCount(100)) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(m.Partition, m.Offset, string(m.Value))
//	}
//
// Messages come in offset order within each partition, the partitions
// interleaved; they carry Topic, Partition, Offset, Timestamp, Key, Value,
// all stored headers, ID and Subject (DeliveryCount is 0). Without
// ReadFollow the read ends once each partition was read up to the end
// offset it had when the read started, or after ReadCount messages.
// Messages removed by retention while the read runs are skipped.
//
// An error ends the iteration and is yielded once, with a nil message:
// invalid options and a partition the topic does not have
// (ErrInvalidArgument), ErrTopicNotFound (also when the topic is deleted
// while being read), ErrClosed (also when the Client is closed during the
// read), ctx's error when ctx ends, and *Error values for the rest. A broken
// read is not retried: the last message's Partition and Offset tell where
// to go on. The stream is not bounded by WithRequestTimeout: bound it with
// ctx.
func (c *Client) ReadTopic(ctx context.Context, topic string, opts ...ReadOption) iter.Seq2[*Message, error] {
	return func(yield func(*Message, error) bool) {
		var cfg readConfig
		for _, o := range opts {
			if o.apply != nil {
				o.apply(&cfg)
			}
		}
		if len(cfg.errs) > 0 {
			yield(nil, errors.Join(cfg.errs...))
			return
		}
		from, err := cfg.from.toProto()
		if err != nil {
			yield(nil, err)
			return
		}
		req := &spoolv1.ReadTopicRequest{Topic: topic, From: from, Count: cfg.count, Follow: cfg.follow}
		if cfg.onePartition {
			req.Partition = &cfg.partition
		}
		readCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		if !c.startRead(&cancel) {
			yield(nil, ErrClosed)
			return
		}
		defer c.stopRead(&cancel)
		route := c.homeRoute()
		stream, err := c.node(route).topics.ReadTopic(readCtx, connect.NewRequest(req))
		if err != nil {
			err = c.readError(ctx, err)
			c.nodeFailed(route, err) // the next read goes to another node if this one is down
			yield(nil, err)
			return
		}
		defer func() {
			cancel() // first: closing a stream the server still sends on would wait for it
			stream.Close()
		}()
		for stream.Receive() {
			for _, m := range messagesFromDeliveries(topic, stream.Msg().GetMessages()) {
				if !yield(m, nil) {
					return
				}
			}
		}
		if err := stream.Err(); err != nil {
			err = c.readError(ctx, err)
			c.nodeFailed(route, err)
			yield(nil, err)
		}
	}
}

// readError is the error a read ended with: ErrClosed when the Client was
// closed, ctx's error when the caller's context ended, else err converted.
func (c *Client) readError(ctx context.Context, err error) error {
	switch {
	case c.isClosed():
		return ErrClosed
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return convertError(err)
}
