package broker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/seglog"
)

// Reading partition logs record by record (sessions, dead-letter scans,
// topic reads), and reading a topic without a subscription
// (TopicService.ReadTopic), for debugging and audits: a TopicReader keeps
// its cursors in memory only; nothing is registered, committed or leased,
// and the topic's subscriptions never see it.

// badBatchError is a stored batch that could not be split off the data read
// or decoded. next is the offset after it, where a reader may go on, or -1
// when its extent is unknown.
type badBatchError struct {
	offset, next int64
	err          error
}

func (e *badBatchError) Error() string {
	return fmt.Sprintf("batch at offset %d cannot be decoded: %v", e.offset, e.err)
}

func (e *badBatchError) Unwrap() error { return e.err }

// eachRecord calls fn with every record of the partition log l at or after
// offset from, in offset order, with the record's offset and timestamp,
// until fn returns false or the readable end is reached. It reads
// sessionReadChunk bytes of whole batches at a time (at least one batch).
// The record's Key, Value and header values alias the data read and stay
// valid; its Headers slice is reused after fn returns. Errors are the log's
// (an *seglog.OffsetOutOfRangeError when retention removed from) and
// *badBatchError.
func (t *topic) eachRecord(l *seglog.Log, from int64, fn func(off int64, ts time.Time, r batch.Record) bool) error {
	return t.eachRecordCached(l, from, nil, fn)
}

// readCache is the rest of the read a consumer session's last event
// stopped in: whole batches, already checked by the log's read, from the
// batch holding the first record not delivered. An event ends at a count
// or a size, most often inside a batch, and the next event would
// otherwise read that batch again and check its CRC again: with the
// batches of up to 1 MiB that producers build (the SDK's batch form,
// Kafka clients), a session read and checked every byte about twice.
// Stored bytes never change below the readable end, so the cache needs
// no invalidation beyond the log it came from and the offsets it covers.
type readCache struct {
	l          *seglog.Log
	data       []byte
	base, next int64 // the offsets data covers: [base, next)
	// big: the last read's first batch was larger than sessionReadChunk.
	// The next read then asks for one batch (the log reads its header,
	// then the batch) rather than sessionReadChunk bytes, all of which the
	// log would read and then discard to read the whole batch again.
	big bool
}

// take returns the cached batches if they hold offset off of l (and
// retention has not removed it), and empties the cache.
func (c *readCache) take(l *seglog.Log, off int64) []byte {
	if c == nil || c.l != l || off < c.base || off >= c.next || off < l.StartOffset() {
		return nil
	}
	data := c.data
	*c = readCache{big: c.big}
	return data
}

// readSize is how much the next read of the log asks for.
func (c *readCache) readSize() int {
	if c != nil && c.big {
		return 1
	}
	return sessionReadChunk
}

// sawRead notes the size of the first batch a read returned.
func (c *readCache) sawRead(data []byte) {
	if c != nil && len(data) >= batch.HeaderSize {
		c.big = int(binary.BigEndian.Uint32(data[8:]))+12 > sessionReadChunk
	}
}

// keep caches data, whole batches from the one holding the next record
// to deliver.
func (c *readCache) keep(l *seglog.Log, data []byte) {
	if c == nil {
		return
	}
	*c = readCache{big: c.big}
	next := int64(-1)
	for bt, err := range batch.Batches(data) {
		if err != nil {
			return
		}
		next = bt.LastOffset() + 1
	}
	if next < 0 {
		return
	}
	*c = readCache{l: l, data: data, base: int64(binary.BigEndian.Uint64(data)), next: next, big: c.big}
}

// eachRecordCached is eachRecord starting with the batches c holds, if
// they hold from, and leaving in c the rest of the read it stops in (c
// may be nil: no cache).
func (t *topic) eachRecordCached(l *seglog.Log, from int64, c *readCache, fn func(off int64, ts time.Time, r batch.Record) bool) error {
	maxDec := t.b.maxDecompressed()
	off := from
	for off < l.EndOffset() {
		data := c.take(l, off)
		if data == nil {
			var err error
			if data, err = l.Read(off, c.readSize()); err != nil {
				return err
			}
			c.sawRead(data)
		}
		if len(data) == 0 {
			return nil
		}
		pos := 0 // of bt in data
		for bt, err := range batch.Batches(data) {
			if err != nil {
				return &badBatchError{offset: off, next: -1, err: err}
			}
			for r, err := range bt.Records(maxDec) {
				if err != nil {
					return &badBatchError{offset: bt.BaseOffset, next: bt.LastOffset() + 1, err: err}
				}
				o := bt.RecordOffset(r)
				if o < from {
					continue
				}
				if !fn(o, time.UnixMilli(bt.RecordTimestamp(r)), r) {
					c.keep(l, data[pos:])
					return nil
				}
			}
			off = bt.LastOffset() + 1
			pos += len(bt.Bytes)
		}
	}
	return nil
}

// batchAt returns the stored batch of partition p that holds offset; ok is
// false when nothing is readable there.
func (t *topic) batchAt(p int32, offset int64) (batch.Batch, bool) {
	data, err := t.logs()[p].Read(offset, 1)
	if err != nil || len(data) == 0 {
		return batch.Batch{}, false
	}
	bt, err := batch.Parse(data)
	return bt, err == nil
}

// recordFrom returns the first record of bt at or after offset; ok is false
// when there is none or the records cannot be decoded.
func (t *topic) recordFrom(bt batch.Batch, offset int64) (batch.Record, bool) {
	for r, err := range bt.Records(t.b.maxDecompressed()) {
		if err != nil {
			return batch.Record{}, false
		}
		if bt.RecordOffset(r) >= offset {
			return r, true
		}
	}
	return batch.Record{}, false
}

// ReadRequest selects what ReadTopic reads.
type ReadRequest struct {
	Topic string
	// Partition reads only this partition; nil reads every partition.
	Partition *int32
	// From is where to start in each partition read (clamped to what the
	// partition retains).
	From catalog.Position
	// Count stops the read after this many messages; 0 = no limit.
	Count int64
	// Follow waits for new messages at the end instead of ending the read.
	Follow bool
}

// ReadBatch is what one TopicReader.Next returns: at most maxEventMessages
// messages and about maxEventBytes of payload (a larger message comes
// alone), in offset order per partition.
type ReadBatch struct {
	Messages []Delivered
	Next     []PartitionStart // each partition read and the next offset to read in it
}

// TopicReader reads a topic from a position without a subscription. It is
// used by one goroutine at a time and holds no lock between calls.
type TopicReader struct {
	t      *topic
	all    bool // every partition; with follow, partitions added later are read from their start
	follow bool
	left   int64 // messages still to return; < 0 = no limit
	curs   []readCursor
	rr     int   // round-robin: the cursor the next batch starts at
	err    error // sticky: returned by every later Next
}

// readCursor is a reader's position in one partition.
type readCursor struct {
	p    int32
	next int64 // the next offset to read
	stop int64 // without follow: the partition's end offset when the read started
}

// ReadTopic starts a read of a topic from req.From, in one partition or all
// of them, and returns the reader; nothing is stored on the server. An
// unknown topic is topic_not_found; a partition outside the topic or a
// negative count is invalid_argument.
func (b *Broker) ReadTopic(req ReadRequest) (*TopicReader, error) {
	if req.Count < 0 {
		return nil, errs.New(errs.InvalidArgument, "count must not be negative (0 means no limit)")
	}
	t, err := b.topic(req.Topic)
	if err != nil {
		return nil, err
	}
	t.life.RLock()
	defer t.life.RUnlock()
	if t.deleted {
		return nil, t.goneErr()
	}
	logs := t.logs()
	r := &TopicReader{t: t, follow: req.Follow, left: req.Count}
	if req.Count == 0 {
		r.left = -1
	}
	var parts []int32
	if req.Partition != nil {
		p := *req.Partition
		if p < 0 || int(p) >= len(logs) {
			return nil, errs.New(errs.InvalidArgument, "partition %d is out of range: topic %q has partitions 0 to %d", p, req.Topic, len(logs)-1)
		}
		parts = []int32{p}
	} else {
		r.all = true
		for p := range logs {
			parts = append(parts, int32(p))
		}
	}
	for _, p := range parts {
		l := logs[p]
		off, err := resolveIn(l, p, req.From)
		if err != nil {
			return nil, err
		}
		r.curs = append(r.curs, readCursor{p: p, next: off, stop: l.EndOffset()})
	}
	return r, nil
}

// goneErr is the error of a read whose topic went away: deleted, or closed
// because the broker is shutting down. It takes no lock.
func (t *topic) goneErr() error {
	select {
	case <-t.b.stop:
		return errs.New(errs.Unavailable, "server is shutting down")
	default:
		return errs.New(errs.TopicNotFound, "topic %q was deleted", t.meta.Name)
	}
}

// Next returns the next batch of messages, waiting (with Follow) until
// there are some. It returns io.EOF once the read is complete: Count
// messages returned, or (without Follow) every partition read up to the end
// offset it had when the read started. It fails with topic_not_found when
// the topic is deleted, unavailable when the server shuts down (EndSessions
// or Close), and with ctx's error when ctx ends. After an error every later
// call returns it.
func (r *TopicReader) Next(ctx context.Context) (ReadBatch, error) {
	t := r.t
	for {
		if r.err != nil {
			return ReadBatch{}, r.err
		}
		if r.left == 0 {
			return ReadBatch{}, io.EOF
		}
		if err := ctx.Err(); err != nil {
			return ReadBatch{}, err
		}
		select {
		case <-t.b.endReads:
			r.err = errs.New(errs.Unavailable, "server is shutting down")
			continue
		default:
		}
		changed := t.changed() // before reading: a publish after the read wakes the wait
		out, moved, done, err := r.read()
		if err != nil {
			r.err = err
		}
		if len(out.Messages) > 0 {
			return out, nil // the error, if any, comes next
		}
		switch {
		case err != nil:
			continue
		case done:
			return ReadBatch{}, io.EOF
		case moved:
			continue // retention skipped a partition ahead: read from there
		case !r.follow:
			// Every partition not done has data below its end that the log
			// returned nothing for; end rather than spin.
			r.err = errs.New(errs.Internal, "topic %q: a partition returned no data below its end offset", t.meta.Name)
			continue
		}
		select {
		case <-changed:
		case <-t.gone:
			r.err = t.goneErr()
		case <-t.b.endReads:
			r.err = errs.New(errs.Unavailable, "server is shutting down")
		case <-ctx.Done():
			return ReadBatch{}, ctx.Err()
		}
	}
}

// read reads one batch, starting at the round-robin cursor and going on to
// the next partition while there is room. It reports whether any cursor
// moved and whether the read is complete (without Follow: every partition
// read to its stop offset, or to its current end if that is lower).
func (r *TopicReader) read() (ReadBatch, bool, bool, error) {
	t := r.t
	t.life.RLock()
	defer t.life.RUnlock()
	if t.deleted {
		return ReadBatch{}, false, false, t.goneErr()
	}
	logs := t.logs()
	if r.all && r.follow {
		// Partitions added since the read started hold only newer messages.
		for p := len(r.curs); p < len(logs); p++ {
			r.curs = append(r.curs, readCursor{p: int32(p), next: logs[p].StartOffset()})
		}
	}
	limit := int64(maxEventMessages)
	if r.left > 0 {
		limit = min(limit, r.left)
	}
	fill := &readFill{limit: int(limit)}
	var out ReadBatch
	var err error
	moved := false
	n := len(r.curs)
	for i := 0; i < n && !fill.full() && err == nil; i++ {
		c := &r.curs[(r.rr+i)%n]
		before := c.next
		err = r.readPartition(logs[c.p], c, fill)
		if c.next != before {
			moved = true
			out.Next = append(out.Next, PartitionStart{Partition: c.p, Offset: c.next})
		}
	}
	r.rr++
	out.Messages = fill.out
	if r.left > 0 {
		r.left -= int64(len(out.Messages))
	}
	done := !r.follow
	for i := range r.curs {
		c := &r.curs[i]
		if c.next < min(c.stop, logs[c.p].EndOffset()) {
			done = false
		}
	}
	return out, moved, done, err
}

// readFill collects the messages of one batch.
type readFill struct {
	out   []Delivered
	hbuf  []batch.RecordHeader // one backing array for the batch's headers
	bytes int
	limit int
}

func (f *readFill) full() bool { return len(f.out) >= f.limit || f.bytes >= maxEventBytes }

// readPartition reads partition c.p from its cursor into f until f is full
// or the end is reached: the stop offset without Follow, the current end
// with it. Messages retention removed before they were read are skipped.
func (r *TopicReader) readPartition(l *seglog.Log, c *readCursor, f *readFill) error {
	t := r.t
	end := l.EndOffset()
	if !r.follow {
		end = min(end, c.stop)
	}
	for !f.full() && c.next < end {
		err := t.eachRecord(l, c.next, func(off int64, ts time.Time, rec batch.Record) bool {
			if off >= end || f.full() {
				return false
			}
			id, subj := attrs(rec.Headers)
			d := Delivered{Partition: c.p, Offset: off, Timestamp: ts, Key: rec.Key, Value: rec.Value,
				Headers: appendHeaders(&f.hbuf, rec.Headers), ID: id, Subject: subj}
			f.out = append(f.out, d)
			f.bytes += len(rec.Key) + len(rec.Value) + 64
			for _, h := range rec.Headers {
				f.bytes += len(h.Key) + len(h.Value)
			}
			c.next = off + 1
			return true
		})
		var bad *badBatchError
		switch {
		case err == nil:
			return nil
		case errors.Is(err, seglog.ErrOffsetOutOfRange) && c.next < l.StartOffset():
			c.next = l.StartOffset() // retention removed what was not read yet
		case errors.As(err, &bad), errors.Is(err, seglog.ErrCorrupt):
			return errs.Wrap(errs.CorruptData, err, "read %s/%d at offset %d", t.meta.Name, c.p, c.next)
		default:
			return errs.Wrap(errs.StorageFailed, err, "read %s/%d at offset %d", t.meta.Name, c.p, c.next)
		}
	}
	return nil
}
