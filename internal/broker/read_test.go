package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/errs"
)

// publishTo publishes n messages "prefix-i" to partition p, one request.
func publishTo(t *testing.T, b *Broker, topic string, p int32, prefix string, n int) {
	t.Helper()
	ms := make([]Message, n)
	for i := range ms {
		ms[i] = Message{Value: []byte(fmt.Sprintf("%s-%d", prefix, i)), Partition: p}
	}
	if _, err := b.Publish(topic, ms); err != nil {
		t.Fatal(err)
	}
}

// readAll reads until io.EOF and returns every batch; it fails the test on
// any other error or after 5 s.
func readAll(t *testing.T, r *TopicReader) []ReadBatch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out []ReadBatch
	for {
		rb, err := r.Next(ctx)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("next after %d batches: %v", len(out), err)
		}
		if len(rb.Messages) == 0 {
			t.Fatalf("empty batch %+v", rb)
		}
		out = append(out, rb)
	}
}

// values returns the messages' values as "P/OFFSET=value".
func values(bs []ReadBatch) []string {
	var out []string
	for _, b := range bs {
		for _, d := range b.Messages {
			out = append(out, fmt.Sprintf("%d/%d=%s", d.Partition, d.Offset, d.Value))
		}
	}
	return out
}

// checkOrder fails unless the messages of each partition come in offset
// order without gaps from the first one.
func checkOrder(t *testing.T, bs []ReadBatch) map[int32][]int64 {
	t.Helper()
	per := map[int32][]int64{}
	for _, b := range bs {
		for _, d := range b.Messages {
			if prev := per[d.Partition]; len(prev) > 0 && d.Offset != prev[len(prev)-1]+1 {
				t.Fatalf("partition %d: offset %d after %d", d.Partition, d.Offset, prev[len(prev)-1])
			}
			per[d.Partition] = append(per[d.Partition], d.Offset)
		}
	}
	return per
}

func readTopic(t *testing.T, b *Broker, req ReadRequest) *TopicReader {
	t.Helper()
	r, err := b.ReadTopic(req)
	if err != nil {
		t.Fatalf("ReadTopic(%+v): %v", req, err)
	}
	return r
}

func part(p int32) *int32 { return &p }

func TestReadTopicPartitionsAndPositions(t *testing.T) {
	e := newEnv(t)
	if _, err := e.b.CreateTopic("t", catalog.TopicConfig{Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	start := e.clk.Now()
	for i := range 4 {
		for p := range int32(3) {
			publishTo(t, e.b, "t", p, fmt.Sprintf("p%d-r%d", p, i), 1)
		}
		e.clk.Advance(time.Minute)
	}
	if _, err := e.b.Publish("t", []Message{{Value: []byte("attrs"), Partition: 2, ID: "id-1", Subject: "a.b",
		Key: []byte("k")}}); err != nil {
		t.Fatal(err)
	}

	// Every partition from the earliest: all 13 messages, each partition in
	// offset order, then the end.
	bs := readAll(t, readTopic(t, e.b, ReadRequest{Topic: "t"}))
	per := checkOrder(t, bs)
	if len(per[0]) != 4 || len(per[1]) != 4 || len(per[2]) != 5 || per[0][0] != 0 {
		t.Fatalf("all partitions: %v", values(bs))
	}
	var withAttrs *Delivered
	for _, b := range bs {
		for i, d := range b.Messages {
			if d.Partition == 2 && d.Offset == 4 {
				withAttrs = &b.Messages[i]
			}
		}
	}
	if d := withAttrs; d == nil || d.ID != "id-1" || d.Subject != "a.b" || string(d.Key) != "k" || d.DeliveryCount != 0 ||
		len(d.Headers) != 2 || !d.Timestamp.Equal(start.Add(4*time.Minute)) {
		t.Errorf("message with attributes: %+v", d)
	}
	for _, b := range bs {
		for _, n := range b.Next {
			if n.Offset != int64(len(per[n.Partition])) {
				t.Errorf("next %+v after one batch holding everything", n)
			}
		}
	}

	// One partition.
	bs = readAll(t, readTopic(t, e.b, ReadRequest{Topic: "t", Partition: part(1)}))
	if want := []string{"1/0=p1-r0-0", "1/1=p1-r1-0", "1/2=p1-r2-0", "1/3=p1-r3-0"}; !reflect.DeepEqual(values(bs), want) {
		t.Fatalf("partition 1: %v, want %v", values(bs), want)
	}
	if want := []PartitionStart{{1, 4}}; !reflect.DeepEqual(bs[0].Next, want) {
		t.Errorf("next %+v, want %+v", bs[0].Next, want)
	}

	// An offset, clamped to what each partition holds.
	bs = readAll(t, readTopic(t, e.b, ReadRequest{Topic: "t", From: catalog.Position{Kind: catalog.AtOffset, Offset: 3}}))
	per = checkOrder(t, bs)
	if !reflect.DeepEqual(per, map[int32][]int64{0: {3}, 1: {3}, 2: {3, 4}}) {
		t.Fatalf("from offset 3: %v", values(bs))
	}
	bs = readAll(t, readTopic(t, e.b, ReadRequest{Topic: "t", Partition: part(0), From: catalog.Position{Kind: catalog.AtOffset, Offset: 99}}))
	if len(bs) != 0 {
		t.Fatalf("from offset 99: %v", values(bs))
	}

	// A time: the first message at or after it in each partition.
	at := start.Add(2 * time.Minute)
	bs = readAll(t, readTopic(t, e.b, ReadRequest{Topic: "t", Partition: part(0), From: catalog.Position{Kind: catalog.AtTime, Time: at}}))
	if want := []string{"0/2=p0-r2-0", "0/3=p0-r3-0"}; !reflect.DeepEqual(values(bs), want) {
		t.Fatalf("from %v: %v, want %v", at, values(bs), want)
	}
	bs = readAll(t, readTopic(t, e.b, ReadRequest{Topic: "t", From: catalog.Position{Kind: catalog.AtTime, Time: start.Add(time.Hour)}}))
	if len(bs) != 0 {
		t.Fatalf("from a time after every message: %v", values(bs))
	}

	// Latest without follow: nothing, at once.
	bs = readAll(t, readTopic(t, e.b, ReadRequest{Topic: "t", From: catalog.Position{Kind: catalog.Latest}}))
	if len(bs) != 0 {
		t.Fatalf("from latest: %v", values(bs))
	}

	// Count: exactly that many, even across partitions.
	bs = readAll(t, readTopic(t, e.b, ReadRequest{Topic: "t", Count: 5}))
	if n := len(values(bs)); n != 5 {
		t.Fatalf("count 5: %v", values(bs))
	}
	checkOrder(t, bs)
	bs = readAll(t, readTopic(t, e.b, ReadRequest{Topic: "t", Partition: part(2), Count: 2}))
	if want := []string{"2/0=p2-r0-0", "2/1=p2-r1-0"}; !reflect.DeepEqual(values(bs), want) {
		t.Fatalf("count 2 of partition 2: %v", values(bs))
	}
}

func TestReadTopicEndsAtStartEnd(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("t", catalog.TopicConfig{Partitions: 1})
	publishTo(t, e.b, "t", 0, "old", 3)
	r := readTopic(t, e.b, ReadRequest{Topic: "t"})
	// Published after the read started: not part of a read without follow.
	publishTo(t, e.b, "t", 0, "new", 2)
	bs := readAll(t, r)
	if want := []string{"0/0=old-0", "0/1=old-1", "0/2=old-2"}; !reflect.DeepEqual(values(bs), want) {
		t.Fatalf("got %v, want %v", values(bs), want)
	}
}

func TestReadTopicResponseBounds(t *testing.T) {
	e := newEnv(t)
	e.opts = func(c *Config) { c.Log.Limits.MaxBatchBytes = 4 << 20 }
	e.restart()
	if _, err := e.b.CreateTopic("t", catalog.TopicConfig{Partitions: 2, MaxMessageBytes: 2 << 20}); err != nil {
		t.Fatal(err)
	}
	const n = maxEventMessages + 904
	for i := 0; i < n; i += 1000 {
		publishTo(t, e.b, "t", 0, fmt.Sprint(i), min(1000, n-i))
	}
	bs := readAll(t, readTopic(t, e.b, ReadRequest{Topic: "t", Partition: part(0)}))
	if len(bs) != 2 || len(bs[0].Messages) != maxEventMessages || len(bs[1].Messages) != n-maxEventMessages {
		t.Fatalf("%d small messages came in %d batches", n, len(bs))
	}
	checkOrder(t, bs)
	if bs[0].Next[0].Offset != maxEventMessages || bs[1].Next[0].Offset != n {
		t.Errorf("next offsets %+v, %+v", bs[0].Next, bs[1].Next)
	}

	// Payload: about 1 MiB per batch; a larger message alone.
	big := bytes.Repeat([]byte("x"), 400<<10)
	huge := bytes.Repeat([]byte("y"), 3<<19) // 1.5 MiB
	for _, v := range [][]byte{big, big, big, huge, big, big} {
		if _, err := e.b.Publish("t", []Message{{Value: v, Partition: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	bs = readAll(t, readTopic(t, e.b, ReadRequest{Topic: "t", Partition: part(1)}))
	var sizes []int
	for _, b := range bs {
		sizes = append(sizes, len(b.Messages))
		total := 0
		for _, d := range b.Messages {
			total += len(d.Value)
		}
		if len(b.Messages) > 1 && total-len(b.Messages[len(b.Messages)-1].Value) >= maxEventBytes {
			t.Errorf("batch went on after reaching %d bytes", maxEventBytes)
		}
	}
	if want := []int{3, 1, 2}; !reflect.DeepEqual(sizes, want) {
		t.Fatalf("messages per batch %v, want %v", sizes, want)
	}
	checkOrder(t, bs)
}

func TestReadTopicRoundRobin(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("t", catalog.TopicConfig{Partitions: 2})
	for p := range int32(2) {
		for i := 0; i < maxEventMessages*2; i += 1000 {
			publishTo(t, e.b, "t", p, fmt.Sprint(i), 1000)
		}
	}
	bs := readAll(t, readTopic(t, e.b, ReadRequest{Topic: "t"}))
	checkOrder(t, bs)
	// Each batch starts at the next partition: neither waits for the other
	// to be read to its end.
	if len(bs) < 4 || bs[0].Messages[0].Partition == bs[1].Messages[0].Partition {
		t.Fatalf("batches start at partitions %d, %d", bs[0].Messages[0].Partition, bs[1].Messages[0].Partition)
	}
}

func TestReadTopicFollow(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("t", catalog.TopicConfig{Partitions: 2})
	publishTo(t, e.b, "t", 0, "before", 1)
	r := readTopic(t, e.b, ReadRequest{Topic: "t", From: catalog.Position{Kind: catalog.Latest}, Follow: true, Count: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type result struct {
		rb  ReadBatch
		err error
	}
	got := make(chan result, 1)
	next := func() {
		rb, err := r.Next(ctx)
		got <- result{rb, err}
	}
	go next()
	select {
	case res := <-got:
		t.Fatalf("Next returned before anything was published: %+v", res)
	case <-time.After(50 * time.Millisecond):
	}
	publishTo(t, e.b, "t", 1, "after", 1)
	res := <-got
	if res.err != nil || !reflect.DeepEqual(values([]ReadBatch{res.rb}), []string{"1/0=after-0"}) {
		t.Fatalf("after a publish: %v %v", values([]ReadBatch{res.rb}), res.err)
	}
	// Partitions added while following are read too.
	if _, err := e.b.AddPartitions("t", 3); err != nil {
		t.Fatal(err)
	}
	go next()
	publishTo(t, e.b, "t", 2, "new-partition", 1)
	res = <-got
	if res.err != nil || !reflect.DeepEqual(values([]ReadBatch{res.rb}), []string{"2/0=new-partition-0"}) {
		t.Fatalf("new partition: %v %v", values([]ReadBatch{res.rb}), res.err)
	}
	// Count reached.
	if _, err := r.Next(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("after count: %v", err)
	}
}

func TestReadTopicFollowEnds(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("t", catalog.TopicConfig{Partitions: 1})
	publishTo(t, e.b, "t", 0, "m", 2)
	follow := func() (*TopicReader, chan error) {
		r := readTopic(t, e.b, ReadRequest{Topic: "t", Follow: true})
		if bs, err := r.Next(context.Background()); err != nil || len(bs.Messages) != 2 {
			t.Fatalf("first batch: %+v %v", bs, err)
		}
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := r.Next(ctx)
			done <- err
		}()
		return r, done
	}

	// Context cancellation.
	r := readTopic(t, e.b, ReadRequest{Topic: "t", Follow: true, From: catalog.Position{Kind: catalog.Latest}})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if _, err := r.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}

	// Topic deletion: topic_not_found, and again on every later call.
	r, done := follow()
	if err := e.b.DeleteTopic("t"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errs.Is(err, errs.TopicNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if _, err := r.Next(context.Background()); !errs.Is(err, errs.TopicNotFound) {
		t.Fatalf("next after delete: %v", err)
	}

	// Server shutdown: unavailable.
	e.b.CreateTopic("t", catalog.TopicConfig{Partitions: 1})
	publishTo(t, e.b, "t", 0, "m", 2)
	_, done = follow()
	e.b.EndSessions()
	if err := <-done; !errs.Is(err, errs.Unavailable) {
		t.Fatalf("after EndSessions: %v", err)
	}
}

func TestReadTopicSkipsWhatRetentionRemoved(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("t", catalog.TopicConfig{Partitions: 1})
	publishTo(t, e.b, "t", 0, "m", 10)
	r := readTopic(t, e.b, ReadRequest{Topic: "t", Count: 3})
	if _, err := e.b.DeleteRecords("t", 0, 6); err != nil {
		t.Fatal(err)
	}
	bs := readAll(t, r)
	if want := []string{"0/6=m-6", "0/7=m-7", "0/8=m-8"}; !reflect.DeepEqual(values(bs), want) {
		t.Fatalf("got %v, want %v", values(bs), want)
	}
}

func TestReadTopicBadInput(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("t", catalog.TopicConfig{Partitions: 2})
	for _, c := range []struct {
		req  ReadRequest
		code errs.Code
		msg  string
	}{
		{ReadRequest{Topic: "nope"}, errs.TopicNotFound, `topic "nope" not found`},
		{ReadRequest{Topic: "t", Partition: part(2)}, errs.InvalidArgument, "partition 2 is out of range: topic \"t\" has partitions 0 to 1"},
		{ReadRequest{Topic: "t", Partition: part(-1)}, errs.InvalidArgument, "partition -1 is out of range"},
		{ReadRequest{Topic: "t", Count: -1}, errs.InvalidArgument, "count must not be negative"},
		{ReadRequest{Topic: "t", From: catalog.Position{Kind: 99}}, errs.InvalidArgument, "unknown position"},
	} {
		_, err := e.b.ReadTopic(c.req)
		if !errs.Is(err, c.code) || !bytes.Contains([]byte(err.Error()), []byte(c.msg)) {
			t.Errorf("ReadTopic(%+v): %v, want %s %q", c.req, err, c.code, c.msg)
		}
	}
}

func TestReadTopicCreatesNoState(t *testing.T) {
	e := newEnv(t)
	e.b.CreateTopic("t", catalog.TopicConfig{Partitions: 2})
	e.b.CreateSubscription("t", "s", catalog.SubConfig{})
	publishTo(t, e.b, "t", 1, "m", 5)
	before, err := e.b.DescribeTopic("t")
	if err != nil {
		t.Fatal(err)
	}
	subBefore, _ := e.b.DescribeSubscription("t", "s")
	keysBefore := stateKeys(t, e)

	readAll(t, readTopic(t, e.b, ReadRequest{Topic: "t"}))
	r := readTopic(t, e.b, ReadRequest{Topic: "t", Follow: true})
	if _, err := r.Next(context.Background()); err != nil {
		t.Fatal(err)
	}

	after, _ := e.b.DescribeTopic("t")
	subAfter, _ := e.b.DescribeSubscription("t", "s")
	if !reflect.DeepEqual(before, after) {
		t.Errorf("describe changed:\n%+v\n%+v", before, after)
	}
	if !reflect.DeepEqual(subBefore.Partitions, subAfter.Partitions) || subBefore.Lag != 5 || subAfter.Lag != 5 ||
		len(subAfter.Group.Members) != 0 {
		t.Errorf("subscription changed:\n%+v\n%+v", subBefore, subAfter)
	}
	if keysAfter := stateKeys(t, e); !reflect.DeepEqual(keysBefore, keysAfter) {
		t.Errorf("state store changed:\n%q\n%q", keysBefore, keysAfter)
	}
}

// stateKeys returns every key and value of the state store as text.
func stateKeys(t *testing.T, e *env) []string {
	t.Helper()
	var out []string
	if err := e.st.Scan(nil, func(k, v []byte) error {
		out = append(out, fmt.Sprintf("%q=%q", k, v))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}
