package api_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/spoolmq/spool/internal/spooltest"
	"github.com/spoolmq/spool/internal/vfs"
)

const (
	createSubPath     = "/spool.v1.SubscriptionService/CreateSubscription"
	listTopicsPath    = "/spool.v1.TopicService/ListTopics"
	listSubsPath      = "/spool.v1.SubscriptionService/ListSubscriptions"
	redrivePath       = "/spool.v1.SubscriptionService/Redrive"
	listDeadLetters   = "/spool.v1.SubscriptionService/ListDeadLetters"
	describeTopicPath = "/spool.v1.TopicService/DescribeTopic"
)

// topicNames lists the server's topics.
func topicNames(t *testing.T, base string) []string {
	t.Helper()
	var resp struct{ Topics []struct{ Name string } }
	if st, code, msg := postJSON(t, base, listTopicsPath, []byte(`{}`), &resp); st != http.StatusOK {
		t.Fatalf("list topics: %d %s %s", st, code, msg)
	}
	var out []string
	for _, tp := range resp.Topics {
		out = append(out, tp.Name)
	}
	return out
}

// subNames lists a topic's subscriptions.
func subNames(t *testing.T, base, topic string) []string {
	t.Helper()
	var resp struct{ Subscriptions []struct{ Name string } }
	if st, code, msg := postJSON(t, base, listSubsPath, []byte(`{"topic":"`+topic+`"}`), &resp); st != http.StatusOK {
		t.Fatalf("list subscriptions: %d %s %s", st, code, msg)
	}
	var out []string
	for _, s := range resp.Subscriptions {
		out = append(out, s.Name)
	}
	return out
}

// TestCreateSubscriptionNonFinite: a queue subscription with a rate limit
// or backoff multiplier that is not a finite number is refused as invalid
// before anything is created (it used to answer internal and leave the
// dead-letter topic behind).
func TestCreateSubscriptionNonFinite(t *testing.T) {
	base := startServer(t)
	createTopic(t, base, "t")
	var cfgs []string
	for _, v := range []string{`"NaN"`, `"Infinity"`, `"-Infinity"`, `1e300`, `-1`} {
		cfgs = append(cfgs, `{"mode":"MODE_QUEUE","rateLimit":`+v+`}`, `{"rateLimit":`+v+`}`)
	}
	for _, v := range []string{`"NaN"`, `"Infinity"`, `"-Infinity"`, `0.5`, `-1`} {
		cfgs = append(cfgs, `{"mode":"MODE_QUEUE","backoff":{"multiplier":`+v+`}}`, `{"mode":"MODE_STREAM","backoff":{"multiplier":`+v+`}}`)
	}
	for _, cfg := range cfgs {
		body := `{"topic":"t","name":"s","config":` + cfg + `}`
		st, code, msg := postJSON(t, base, createSubPath, []byte(body), nil)
		if st != http.StatusBadRequest || code != "invalid_argument" {
			t.Errorf("%s: status %d, code %q, message %q", body, st, code, msg)
		}
	}
	if got := topicNames(t, base); !slices.Equal(got, []string{"t"}) {
		t.Errorf("topics after refused creations: %v", got)
	}
	if got := subNames(t, base, "t"); len(got) != 0 {
		t.Errorf("subscriptions after refused creations: %v", got)
	}
	// A valid one still works and creates its dead-letter topic.
	if st, code, msg := postJSON(t, base, createSubPath, []byte(`{"topic":"t","name":"s","config":{"mode":"MODE_QUEUE","rateLimit":2.5,"backoff":{"multiplier":1.5}}}`), nil); st != http.StatusOK {
		t.Fatalf("valid subscription: %d %s %s", st, code, msg)
	}
	if got := topicNames(t, base); !slices.Contains(got, "dlq.t.s") {
		t.Errorf("topics: %v", got)
	}
}

// TestRedriveNonFinite: Redrive and ListDeadLetters validate their numbers
// too.
func TestRedriveNonFinite(t *testing.T) {
	base := startServer(t)
	createTopic(t, base, "t")
	if st, code, msg := postJSON(t, base, createSubPath, []byte(`{"topic":"t","name":"q","config":{"mode":"MODE_QUEUE"}}`), nil); st != http.StatusOK {
		t.Fatalf("create: %d %s %s", st, code, msg)
	}
	for _, body := range []string{
		`{"topic":"t","subscription":"q","rateLimit":"NaN"}`,
		`{"topic":"t","subscription":"q","rateLimit":"Infinity"}`,
		`{"topic":"t","subscription":"q","rateLimit":"-Infinity"}`,
		`{"topic":"t","subscription":"q","rateLimit":-1}`,
		`{"topic":"t","subscription":"q","limit":"-1"}`,
	} {
		if st, code, msg := postJSON(t, base, redrivePath, []byte(body), nil); st != http.StatusBadRequest || code != "invalid_argument" {
			t.Errorf("redrive %s: %d %q %q", body, st, code, msg)
		}
	}
	if st, code, msg := postJSON(t, base, listDeadLetters, []byte(`{"topic":"t","subscription":"q","limit":-1}`), nil); st != http.StatusBadRequest || code != "invalid_argument" {
		t.Errorf("list dead letters with limit -1: %d %q %q", st, code, msg)
	}
	var rep struct{ Moved string }
	if st, code, msg := postJSON(t, base, redrivePath, []byte(`{"topic":"t","subscription":"q","rateLimit":100}`), &rep); st != http.StatusOK {
		t.Errorf("valid redrive: %d %q %q", st, code, msg)
	}
}

// TestCreateSubscriptionUndone: when the subscription cannot be created
// after its dead-letter topic was, the dead-letter topic this call created
// is removed again, and one that existed before is kept.
func TestCreateSubscriptionUndone(t *testing.T) {
	// Reading the topic's partition log fails while armed: resolving a
	// start time, the step after the dead-letter topic, fails.
	var armed atomic.Bool
	fs := vfs.NewErrorFS(vfs.Default, vfs.InjectorFunc(func(op vfs.Op) error {
		if armed.Load() && op.Kind == vfs.OpFileRead && strings.Contains(op.Path, "/topics/t-") {
			return &vfs.InjectedError{Op: op}
		}
		return nil
	}))
	base := startServer(t, spooltest.FS(fs))
	createTopic(t, base, "t")
	createTopic(t, base, "shared")
	if st, code, msg := postJSON(t, base, publishPath, []byte(`{"topic":"t","messages":[{"value":"aGk="}]}`), nil); st != http.StatusOK {
		t.Fatalf("publish: %d %s %s", st, code, msg)
	}
	const fromTime = `"start":{"time":"2000-01-01T00:00:00Z"}`
	armed.Store(true)
	for _, body := range []string{
		`{"topic":"t","name":"s","config":{"mode":"MODE_QUEUE",` + fromTime + `}}`,
		`{"topic":"t","name":"s","config":{"mode":"MODE_QUEUE","deadLetterTopic":"shared",` + fromTime + `}}`,
	} {
		st, code, msg := postJSON(t, base, createSubPath, []byte(body), nil)
		if st == http.StatusOK || !strings.Contains(msg, "injected") {
			t.Errorf("%s: %d %q %q, want the injected failure", body, st, code, msg)
		}
	}
	armed.Store(false)
	if got := topicNames(t, base); !slices.Equal(got, []string{"shared", "t"}) {
		t.Errorf("topics after failed creations: %v (want the created dead-letter topic removed, the existing one kept)", got)
	}
	if got := subNames(t, base, "t"); len(got) != 0 {
		t.Errorf("subscriptions after failed creations: %v", got)
	}

	var created struct {
		Subscription struct {
			Config struct{ DeadLetterTopic string }
		}
	}
	if st, code, msg := postJSON(t, base, createSubPath, []byte(`{"topic":"t","name":"s","config":{"mode":"MODE_QUEUE",`+fromTime+`}}`), &created); st != http.StatusOK {
		t.Fatalf("after the failure: %d %s %s", st, code, msg)
	}
	if created.Subscription.Config.DeadLetterTopic != "dlq.t.s" || !slices.Contains(topicNames(t, base), "dlq.t.s") {
		t.Errorf("created %+v; topics %v", created, topicNames(t, base))
	}
	var desc json.RawMessage
	if st, code, msg := postJSON(t, base, describeTopicPath, []byte(`{"name":"dlq.t.s"}`), &desc); st != http.StatusOK {
		t.Errorf("describe the dead-letter topic: %d %s %s", st, code, msg)
	}
}
