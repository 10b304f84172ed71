package sreg

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/schema"
)

// Consumer-declared reader schemas. A subscription may declare the
// version of a subject it reads with (DeclareReader). Registering a new
// version that a live declared reader cannot read is refused (or only
// warned about, per subject: ReaderCheck), naming the subscription; a
// version a live subscription reads cannot be deleted. "Live" is decided
// from the broker's catalog, which the metadata group orders with the
// registry's own changes, so every node decides alike. A declaration
// outlives its subscription until removed, but is ignored once the
// subscription is gone.

// Reader is a subscription's declared reader schema.
type Reader struct {
	Topic        string `json:"topic"`
	Subscription string `json:"subscription"`
	Subject      string `json:"subject"`
	Version      int    `json:"version"`
	Live         bool   `json:"live"` // the subscription exists
}

// ReaderCheck is what a registration that a declared reader cannot read
// does.
type ReaderCheck string

// The reader checks.
const (
	ReaderRefuse ReaderCheck = "REFUSE" // the default
	ReaderWarn   ReaderCheck = "WARN"
)

// ParseReaderCheck reads a reader check's name.
func ParseReaderCheck(s string) (ReaderCheck, error) {
	switch c := ReaderCheck(strings.ToUpper(s)); c {
	case ReaderRefuse, ReaderWarn:
		return c, nil
	}
	return "", errorf(CodeInvalidRequest, "Invalid reader check %q: REFUSE or WARN", s)
}

// readerRec is a declaration's record, keyed rd/ ‖ topic ‖ 00 ‖ subscription.
type readerRec struct {
	Subject string `json:"subject"`
	Version int    `json:"version"`
}

var prefixReader = []byte("rd/")

func keyReader(topic, sub string) []byte {
	return append(append(append(bytes.Clone(prefixReader), topic...), 0), sub...)
}

type readerKey struct{ topic, sub string }

func (m *model) loadReader(key, value []byte) error {
	k := key[len(prefixReader):]
	i := bytes.IndexByte(k, 0)
	if i < 0 {
		return fmt.Errorf("reader record key %q", key)
	}
	var r readerRec
	if err := json.Unmarshal(value, &r); err != nil {
		return err
	}
	m.readers[readerKey{string(k[:i]), string(k[i+1:])}] = r
	return nil
}

// live reports whether a subscription exists.
func (r *Registry) live(topic, sub string) bool {
	if r.subs == nil {
		return true
	}
	return r.subs(topic, sub)
}

// readersOf lists the declarations on a subject, in topic and
// subscription order.
func (r *Registry) readersOf(m *model, subject string) []Reader {
	var out []Reader
	for k, rd := range m.readers {
		if rd.Subject == subject {
			out = append(out, Reader{Topic: k.topic, Subscription: k.sub, Subject: rd.Subject, Version: rd.Version, Live: r.live(k.topic, k.sub)})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Subscription < out[j].Subscription
	})
	return out
}

// Readers lists the declared readers of a subject ("": of every subject).
func (r *Registry) Readers(subject string) []Reader {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if subject != "" {
		return r.readersOf(r.m, subject)
	}
	var out []Reader
	seen := map[string]bool{}
	for _, rd := range r.m.readers {
		if !seen[rd.Subject] {
			seen[rd.Subject] = true
			out = append(out, r.readersOf(r.m, rd.Subject)...)
		}
	}
	return out
}

// checkReaders checks a new schema of a subject against its live
// declared readers: each must read data written with it. Called with mu
// held (read).
func (r *Registry) checkReaders(m *model, subject string, p schema.Schema, t schema.Type) ([]string, error) {
	var out []string
	for _, rd := range r.readersOf(m, subject) {
		if !rd.Live {
			continue
		}
		v, err := m.resolve(subject, rd.Version, true)
		if err != nil {
			continue // its version is gone for good: nothing to protect
		}
		name := rd.Topic + "/" + rd.Subscription
		if old := m.schemas[v.ID]; old.Type != t {
			out = append(out, fmt.Sprintf("subscription %s reads version %d: SCHEMA_TYPE_CHANGED: it reads %s, the new schema is %s", name, rd.Version, old.Type, t))
			continue
		}
		rp, err := r.parsedByID(m, v.ID)
		if err != nil {
			return nil, err
		}
		for _, is := range rp.Check(p) {
			out = append(out, fmt.Sprintf("subscription %s reads version %d and cannot read the new schema's data: %s", name, rd.Version, is))
		}
	}
	return out, nil
}

// readBy returns a live subscription that reads subject's version v ("":
// none). Called at apply: the catalog is as the metadata group ordered it.
func (r *Registry) readBy(m *model, subject string, v int) string {
	for k, rd := range m.readers {
		if rd.Subject == subject && rd.Version == v && r.live(k.topic, k.sub) {
			return k.topic + "/" + k.sub
		}
	}
	return ""
}

// DeclareReader declares that a subscription reads with a subject's
// version (-1: the latest, resolved now).
func (r *Registry) DeclareReader(topic, sub, subject string, version int) (int, error) {
	if topic == "" || sub == "" || strings.ContainsRune(topic, 0) || strings.ContainsRune(sub, 0) {
		return 0, errorf(CodeInvalidRequest, "Invalid reader: a topic and a subscription are needed")
	}
	r.mu.RLock()
	v, err := r.m.resolve(subject, version, false)
	r.mu.RUnlock()
	if err != nil {
		return 0, err
	}
	if !r.live(topic, sub) {
		return 0, errorf(CodeSubjectNotFound, "Subscription '%s' of topic '%s' not found", sub, topic)
	}
	if err := r.decide(change{Op: opReader, Topic: topic, Sub: sub, Subject: subject, Version: v.Version}); err != nil {
		return 0, asError(err)
	}
	return v.Version, nil
}

// RemoveReader removes a subscription's declaration.
func (r *Registry) RemoveReader(topic, sub string) error {
	r.mu.RLock()
	_, ok := r.m.readers[readerKey{topic, sub}]
	r.mu.RUnlock()
	if !ok {
		return errorf(CodeSubjectNotFound, "Subscription '%s' of topic '%s' declares no reader schema", sub, topic)
	}
	return asErrorOrNil(r.decide(change{Op: opReader, Topic: topic, Sub: sub}))
}

func applyReader(m *model, c change) ([]broker.Record, func(), error) {
	key := readerKey{c.Topic, c.Sub}
	if c.Subject == "" {
		return []broker.Record{{Key: keyReader(c.Topic, c.Sub)}}, func() { delete(m.readers, key) }, nil
	}
	if _, err := m.resolve(c.Subject, c.Version, false); err != nil {
		return nil, nil, err
	}
	rec := readerRec{Subject: c.Subject, Version: c.Version}
	return []broker.Record{{Key: keyReader(c.Topic, c.Sub), Value: mustJSON(&rec)}}, func() { m.readers[key] = rec }, nil
}

// ReaderCheckOf returns a subject's reader check.
func (r *Registry) ReaderCheckOf(subject string) ReaderCheck {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if s := r.m.subjects[subject]; s != nil && s.readers != "" {
		return s.readers
	}
	return ReaderRefuse
}

// SetReaderCheck sets a subject's reader check.
func (r *Registry) SetReaderCheck(subject string, c ReaderCheck) error {
	if err := checkSubject(subject); err != nil {
		return err
	}
	if c == ReaderRefuse {
		c = "" // the default
	}
	return asErrorOrNil(r.decide(change{Op: opReaderCheck, Subject: subject, Readers: c}))
}
