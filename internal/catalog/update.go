package catalog

import (
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/state"
)

// Changing a subscription after creation. Its filter, delivery settings
// (ack timeout, max deliveries, backoff, on-expired), limits (max in
// flight, rate) and stream failure action can change; its mode, start
// position, ordering and dead-letter topic cannot: they decide what the
// subscription's stored state means.

// CheckSubChange returns an InvalidArgument error naming the first setting
// that differs between old and next but cannot change on an existing
// subscription, and what to do instead; nil if there is none.
func CheckSubChange(old, next SubConfig) error {
	switch {
	case next.Mode != old.Mode:
		return errs.New(errs.InvalidArgument, "mode cannot change (this is a %s subscription): create a new subscription with the mode you want", old.Mode)
	case !samePosition(next.Start, old.Start):
		return errs.New(errs.InvalidArgument, "start cannot change (it is where the subscription began): move its position with a reset instead")
	case next.Queue.Ordering != old.Queue.Ordering:
		return errs.New(errs.InvalidArgument, "ordering cannot change (messages in flight were leased under the old order): create a new subscription with the ordering you want")
	case next.Queue.DeadLetterTopic != old.Queue.DeadLetterTopic:
		return errs.New(errs.InvalidArgument, "dead-letter topic cannot change (its dead letters are listed and redriven from there): create a new subscription with the dead-letter topic you want")
	}
	return nil
}

func samePosition(a, b Position) bool {
	return a.Kind == b.Kind && a.Offset == b.Offset && a.Time.Equal(b.Time)
}

// UpdateSub stores a changed subscription (synced). The subscription must
// exist and be the same one (created at s.Created): one deleted and created
// again meanwhile is not overwritten (SubNotFound). Its committed offsets
// and queue state are left as they are.
func (c *Catalog) UpdateSub(s Subscription, stamps ...Stamp) error {
	v, err := encodeSub(s)
	if err != nil {
		return errs.Wrap(errs.InvalidArgument, err, "store subscription %q", s.Name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cur, ok := c.subs[s.Topic][s.Name]
	if !ok || !cur.Created.Equal(s.Created) {
		return errs.New(errs.SubNotFound, "subscription %q on topic %q not found", s.Name, s.Topic)
	}
	b := c.st.NewBatch()
	b.Set(state.SubKey(s.Topic, s.Name), v)
	if err := stamped(b, stamps).Commit(true); err != nil {
		return errs.Wrap(errs.StorageFailed, err, "store subscription %q", s.Name)
	}
	c.subs[s.Topic][s.Name] = s
	return nil
}
