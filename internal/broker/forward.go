package broker

import (
	"context"
	"time"

	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/recordbatch"
)

// Forwarder publishes messages through the native API of the node that
// leads their partition (every message names its partition).
type Forwarder interface {
	Publish(ctx context.Context, nodeAddr, topic string, msgs []Message) ([]Result, error)
}

// publishOwn publishes messages the broker makes itself — dead-letter
// copies, redriven messages — each carrying an id, so that a retry is a
// duplicate, never a second copy. On a cluster a message goes to a
// partition this node leads when its placement allows (keyless), and
// otherwise through Config.Forward to the partition's leader. The
// free-space gate does not refuse them here (publishWait); a forwarded
// publish goes through the leader's API and its gate.
func (b *Broker) publishOwn(topicName string, msgs []Message) ([]Result, error) {
	t, err := b.topic(topicName)
	if err != nil {
		return nil, err
	}
	rs := t.replicas()
	if rs == nil {
		return b.publishWait(topicName, msgs, true)
	}
	// Place every message, preferring a partition led here.
	local := int32(-1)
	for p, r := range rs {
		if _, _, self := r.g.Leader(); self {
			local = int32(p)
			break
		}
	}
	nparts := int32(len(rs))
	byLeader := map[int32][]int{} // partition whose leader takes them (-1: here)
	for i := range msgs {
		m := &msgs[i]
		p := m.Partition
		switch {
		case p >= 0:
		case len(m.Key) > 0:
			p = recordbatch.KeyPartition(m.Key, nparts)
		case local >= 0:
			p = local
		default:
			p = 0
		}
		if p < 0 || p >= nparts {
			return nil, errs.New(errs.InvalidArgument, "message %d: partition %d does not exist (topic %q has %d)", i, p, topicName, nparts)
		}
		m.Partition = p
		if _, _, self := rs[p].g.Leader(); self {
			byLeader[-1] = append(byLeader[-1], i)
		} else {
			byLeader[p] = append(byLeader[p], i)
		}
	}
	results := make([]Result, len(msgs))
	for p, idx := range byLeader {
		part := make([]Message, len(idx))
		for k, i := range idx {
			part[k] = msgs[i]
		}
		var res []Result
		if p < 0 {
			res, err = b.publishWait(topicName, part, true)
		} else {
			res, err = b.forward(topicName, p, rs[p], part)
		}
		if err != nil {
			return nil, err
		}
		for k, i := range idx {
			results[i] = res[k]
		}
	}
	return results, nil
}

// forward publishes msgs of partition p through its leader.
func (b *Broker) forward(topicName string, p int32, r *replica, msgs []Message) ([]Result, error) {
	lead, _, _ := r.g.Leader()
	addr := ""
	if lead != 0 {
		addr = r.g.NodeAddr(lead)
	}
	if b.cfg.Forward == nil || addr == "" {
		return nil, errNotLeader(topicName, p, lead, addr)
	}
	timeout := b.cfg.MetaTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	res, err := b.cfg.Forward.Publish(ctx, addr, topicName, msgs)
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "publish to %s/%d through its leader, node %d", topicName, p, lead)
	}
	if len(res) != len(msgs) {
		return nil, errs.New(errs.Internal, "publish to %s/%d through node %d: %d results for %d messages", topicName, p, lead, len(res), len(msgs))
	}
	return res, nil
}
