package client_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spoolmq/spool/client"
)

// collect ranges over a read and returns its messages and the error that
// ended it, failing the test if that takes more than 10 s.
func collect(t *testing.T, seq iter.Seq2[*client.Message, error]) ([]*client.Message, error) {
	t.Helper()
	type result struct {
		msgs []*client.Message
		err  error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		for m, err := range seq {
			if err != nil {
				r.err = err
				break
			}
			r.msgs = append(r.msgs, m)
		}
		done <- r
	}()
	select {
	case r := <-done:
		return r.msgs, r.err
	case <-time.After(10 * time.Second):
		t.Fatal("read did not end")
		return nil, nil
	}
}

// where returns the messages as "P/OFFSET=value".
func where(msgs []*client.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = fmt.Sprintf("%d/%d=%s", m.Partition, m.Offset, m.Value)
	}
	return out
}

func TestIntegrationReadTopic(t *testing.T) {
	c := startServer(t)
	ctx := context.Background()
	if _, err := c.CreateTopic(ctx, "orders", client.TopicConfig{Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSubscription(ctx, "orders", "billing", client.SubscriptionConfig{}); err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	var msgs []client.Message
	for i := range 12 {
		m := client.Message{Value: []byte(fmt.Sprint("v", i)), ID: fmt.Sprint("id-", i), Subject: "orders.eu",
			Key: []byte("k"), Headers: []client.Header{{Key: "trace", Value: []byte("abc")}},
			Timestamp: base.Add(time.Duration(i) * time.Minute)}
		msgs = append(msgs, m.ToPartition(int32(i%3)))
	}
	if _, err := c.Publish(ctx, "orders", msgs...); err != nil {
		t.Fatal(err)
	}
	infoBefore, err := c.DescribeTopic(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	subBefore, err := c.DescribeSubscription(ctx, "orders", "billing")
	if err != nil {
		t.Fatal(err)
	}

	// Every partition, from the earliest.
	got, err := collect(t, c.ReadTopic(ctx, "orders"))
	if err != nil || len(got) != 12 {
		t.Fatalf("read all: %v %v", where(got), err)
	}
	next := map[int32]int64{}
	for _, m := range got {
		if m.Offset != next[m.Partition] {
			t.Fatalf("partition %d: offset %d, want %d", m.Partition, m.Offset, next[m.Partition])
		}
		next[m.Partition]++
		i := int(m.Partition) + 3*int(m.Offset)
		if m.Topic != "orders" || string(m.Value) != fmt.Sprint("v", i) || m.ID != fmt.Sprint("id-", i) ||
			m.Subject != "orders.eu" || string(m.Key) != "k" || !m.Timestamp.Equal(base.Add(time.Duration(i)*time.Minute)) ||
			m.DeliveryCount != 0 {
			t.Errorf("message %d: %+v", i, m)
		}
		if v, ok := m.HeaderValue("trace"); !ok || string(v) != "abc" {
			t.Errorf("message %d: headers %+v", i, m.Headers)
		}
	}

	// One partition, from an offset, a time, the latest; a count.
	for _, c2 := range []struct {
		name string
		opts []client.ReadOption
		want []string
	}{
		{"partition 1", []client.ReadOption{client.ReadPartition(1)}, []string{"1/0=v1", "1/1=v4", "1/2=v7", "1/3=v10"}},
		{"offset 2", []client.ReadOption{client.ReadPartition(2), client.ReadFrom(client.AtOffset(2))}, []string{"2/2=v8", "2/3=v11"}},
		{"offset beyond the end", []client.ReadOption{client.ReadFrom(client.AtOffset(1000))}, []string{}},
		{"time", []client.ReadOption{client.ReadPartition(0), client.ReadFrom(client.AtTime(base.Add(5 * time.Minute)))}, []string{"0/2=v6", "0/3=v9"}},
		{"latest", []client.ReadOption{client.ReadFrom(client.Latest())}, []string{}},
		{"count", []client.ReadOption{client.ReadPartition(1), client.ReadCount(2)}, []string{"1/0=v1", "1/1=v4"}},
	} {
		got, err := collect(t, c.ReadTopic(ctx, "orders", c2.opts...))
		if err != nil || !reflect.DeepEqual(where(got), c2.want) {
			t.Errorf("%s: %v %v, want %v", c2.name, where(got), err, c2.want)
		}
	}
	got, err = collect(t, c.ReadTopic(ctx, "orders", client.ReadCount(5)))
	if err != nil || len(got) != 5 {
		t.Errorf("count 5 of every partition: %v %v", where(got), err)
	}

	// Nothing changed on the server.
	infoAfter, _ := c.DescribeTopic(ctx, "orders")
	subAfter, _ := c.DescribeSubscription(ctx, "orders", "billing")
	if !reflect.DeepEqual(infoBefore, infoAfter) {
		t.Errorf("topic changed:\n%+v\n%+v", infoBefore, infoAfter)
	}
	subs, _ := c.ListSubscriptions(ctx, "orders")
	if len(subs) != 1 || len(subAfter.Members) != 0 || subAfter.Lag != 12 || subAfter.Generation != subBefore.Generation {
		t.Errorf("subscriptions changed: %+v\n%+v", subs, subAfter)
	}
	for i := range subAfter.Partitions {
		if b, a := subBefore.Partitions[i], subAfter.Partitions[i]; b.CommittedOffset != a.CommittedOffset || a.Lag != 4 {
			t.Errorf("partition %d of the subscription: %+v, then %+v", i, b, a)
		}
	}
}

func TestIntegrationReadTopicErrors(t *testing.T) {
	c := startServer(t)
	ctx := context.Background()
	c.CreateTopic(ctx, "orders", client.TopicConfig{Partitions: 3})
	for _, tc := range []struct {
		name  string
		topic string
		opts  []client.ReadOption
		want  error
		text  string
	}{
		{"unknown topic", "nope", nil, client.ErrTopicNotFound, `topic "nope" not found`},
		{"partition out of range", "orders", []client.ReadOption{client.ReadPartition(3)}, client.ErrInvalidArgument, "partitions 0 to 2"},
		{"negative partition", "orders", []client.ReadOption{client.ReadPartition(-1)}, client.ErrInvalidArgument, "negative partition"},
		{"negative count", "orders", []client.ReadOption{client.ReadCount(-1)}, client.ErrInvalidArgument, "negative count"},
		{"negative offset", "orders", []client.ReadOption{client.ReadFrom(client.AtOffset(-1))}, client.ErrInvalidArgument, "negative offset"},
	} {
		got, err := collect(t, c.ReadTopic(ctx, tc.topic, tc.opts...))
		if len(got) != 0 || !errors.Is(err, tc.want) || !strings.Contains(fmt.Sprint(err), tc.text) {
			t.Errorf("%s: %v %v, want %v containing %q", tc.name, where(got), err, tc.want, tc.text)
		}
	}
}

// Many messages (more than one response holds) arrive complete and in
// order.
func TestIntegrationReadTopicMany(t *testing.T) {
	c := startServer(t)
	ctx := context.Background()
	c.CreateTopic(ctx, "big", client.TopicConfig{})
	const n = 10_000
	for i := 0; i < n; i += 1000 {
		var msgs []client.Message
		for j := range 1000 {
			msgs = append(msgs, client.Message{Value: []byte(fmt.Sprint(i + j))})
		}
		if _, err := c.Publish(ctx, "big", msgs...); err != nil {
			t.Fatal(err)
		}
	}
	got, err := collect(t, c.ReadTopic(ctx, "big"))
	if err != nil || len(got) != n {
		t.Fatalf("read %d messages: %v", len(got), err)
	}
	for i, m := range got {
		if m.Offset != int64(i) || string(m.Value) != fmt.Sprint(i) {
			t.Fatalf("message %d: %d/%d=%s", i, m.Partition, m.Offset, m.Value)
		}
	}
}

func TestIntegrationReadTopicFollow(t *testing.T) {
	c := startServer(t)
	ctx := context.Background()
	c.CreateTopic(ctx, "orders", client.TopicConfig{Partitions: 2})
	publish := func(v string) {
		t.Helper()
		if _, err := c.Publish(ctx, "orders", client.Message{Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	publish("first")

	// A message published after the read started (it has yielded the first)
	// arrives; the read ends at the count.
	received := make(chan string, 10)
	ended := make(chan error, 1)
	go func() {
		var err error
		for m, e := range c.ReadTopic(ctx, "orders", client.ReadFollow(), client.ReadCount(2)) {
			if e != nil {
				err = e
				break
			}
			received <- string(m.Value)
		}
		ended <- err
	}()
	if v := recv(t, received); v != "first" {
		t.Fatalf("first message %q", v)
	}
	publish("second")
	if v := recv(t, received); v != "second" {
		t.Fatalf("second message %q", v)
	}
	if err := recvErr(t, ended); err != nil {
		t.Fatalf("read with count 2 ended with %v", err)
	}

	// Deleting the topic ends a following read with ErrTopicNotFound.
	go func() {
		var err error
		for m, e := range c.ReadTopic(ctx, "orders", client.ReadFollow()) {
			if e != nil {
				err = e
				break
			}
			received <- string(m.Value)
		}
		ended <- err
	}()
	recv(t, received)
	recv(t, received)
	if err := c.DeleteTopic(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	if err := recvErr(t, ended); !errors.Is(err, client.ErrTopicNotFound) {
		t.Fatalf("read of a deleted topic ended with %v", err)
	}
}

func TestIntegrationReadTopicStops(t *testing.T) {
	c := startServer(t)
	ctx := context.Background()
	c.CreateTopic(ctx, "orders", client.TopicConfig{})
	c.Publish(ctx, "orders", client.Message{Value: []byte("m")})

	// Breaking out of the loop ends a following read.
	for m, err := range c.ReadTopic(ctx, "orders", client.ReadFollow()) {
		if err != nil || string(m.Value) != "m" {
			t.Fatalf("%v %v", m, err)
		}
		break
	}

	// Cancelling the context: ctx's error.
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := collect(t, c.ReadTopic(cctx, "orders", client.ReadFollow(), client.ReadFrom(client.Latest()))); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled read ended with %v", err)
	}

	// Closing the client: ErrClosed, during and after.
	ended := make(chan error, 1)
	got := make(chan struct{}, 1)
	go func() {
		var err error
		for _, e := range c.ReadTopic(ctx, "orders", client.ReadFollow()) {
			if e != nil {
				err = e
				break
			}
			got <- struct{}{}
		}
		ended <- err
	}()
	<-got
	c.Close()
	if err := recvErr(t, ended); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("read during Close ended with %v", err)
	}
	if _, err := collect(t, c.ReadTopic(ctx, "orders")); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("read after Close: %v", err)
	}
}

func recv(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10 s")
		return ""
	}
}

func recvErr(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the read did not end within 10 s")
		return nil
	}
}
