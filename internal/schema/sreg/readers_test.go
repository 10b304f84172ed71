package sreg

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
)

// An Order whose item is an int: version 1's readers cannot read it.
const avroItemInt = `{"type":"record","name":"Order","namespace":"acme","fields":[{"name":"id","type":"long"},{"name":"item","type":"int"}]}`

func TestDeclaredReaders(t *testing.T) {
	e := newEnv(t)
	if _, err := e.reg.Register("orders-value", SchemaInput{Type: "AVRO", Text: avroV1}, 0, 0); err != nil {
		t.Fatal(err)
	}
	e.bind(t, "orders", "orders-value", catalog.SchemaReject)
	if _, err := e.b.CreateSubscription("orders", "billing", catalog.SubConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.DeclareReader("orders", "nope", "orders-value", 1); err == nil {
		t.Fatal("a reader declared for a missing subscription")
	}
	if _, err := e.reg.DeclareReader("orders", "billing", "orders-value", 9); err == nil {
		t.Fatal("a reader of a missing version declared")
	}
	if v, err := e.reg.DeclareReader("orders", "billing", "orders-value", -1); err != nil || v != 1 {
		t.Fatalf("declare: %d, %v", v, err)
	}
	// NONE lets anything past the level check; the reader still refuses.
	e.cl.SetCompatibility(e.ctx, sr.SetCompatibility{Level: sr.CompatNone}, "orders-value")
	_, err := e.cl.CreateSchema(e.ctx, "orders-value", sr.Schema{Schema: avroItemInt})
	if code(err) != CodeIncompatible || !strings.Contains(err.Error(), "orders/billing") {
		t.Fatalf("registration a declared reader cannot read: %v", err)
	}
	res, err := e.cl.CheckCompatibility(sr.WithParams(e.ctx, sr.Verbose), "orders-value", -2, sr.Schema{Schema: avroItemInt})
	if err != nil || res.Is || !strings.Contains(strings.Join(res.Messages, " "), "orders/billing") {
		t.Fatalf("check against all, readers included: %+v, %v", res, err)
	}
	// A version a reader can read is fine.
	if _, err := e.cl.CreateSchema(e.ctx, "orders-value", sr.Schema{Schema: avroV2}); err != nil {
		t.Fatalf("a version the reader can read: %v", err)
	}
	// WARN: registered, with the warning in the answer.
	req, _ := http.NewRequest("PUT", e.srv.URL+"/spool/reader-check/orders-value", strings.NewReader(`{"readerCheck":"warn"}`))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("set reader check: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	resp, err := http.Post(e.srv.URL+"/subjects/orders-value/versions", ContentType, strings.NewReader(mustString(map[string]string{"schema": avroItemInt})))
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		ID       int      `json:"id"`
		Warnings []string `json:"warnings"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if resp.StatusCode != 200 || out.ID == 0 || len(out.Warnings) == 0 || !strings.Contains(out.Warnings[0], "orders/billing") {
		t.Fatalf("registration under WARN: %d %+v", resp.StatusCode, out)
	}
	// The version the subscription reads cannot be deleted while it lives.
	if err := e.cl.DeleteSchema(e.ctx, "orders-value", 1, sr.SoftDelete); code(err) != CodeReferenceExists || !strings.Contains(err.Error(), "orders/billing") {
		t.Fatalf("delete a version a live subscription reads: %v", err)
	}
	// Usage: versions produced (validated here) and who reads which.
	id1 := 1
	if _, err := e.b.Publish("orders", []broker.Message{{Value: wire(id1, e.avroOrder(t, 1, "x")), Partition: -1}}); err != nil {
		t.Fatal(err)
	}
	u, err := e.reg.Usage("orders-value")
	if err != nil || len(u) != 3 || u[0].Produced != 1 || u[0].Last == nil || len(u[0].Readers) != 1 || u[1].Produced != 0 {
		t.Fatalf("usage: %+v, %v", u, err)
	}
	// Declarations survive a restart.
	e.reopen()
	if rs := e.reg.Readers("orders-value"); len(rs) != 1 || rs[0].Subscription != "billing" || !rs[0].Live {
		t.Fatalf("readers after restart: %+v", rs)
	}
	// Once the subscription is gone, its version may go.
	if err := e.b.DeleteSubscription("orders", "billing"); err != nil {
		t.Fatal(err)
	}
	if err := e.cl.DeleteSchema(e.ctx, "orders-value", 1, sr.SoftDelete); err != nil {
		t.Fatalf("delete after the subscription went: %v", err)
	}
	if err := e.reg.RemoveReader("orders", "billing"); err != nil {
		t.Fatal(err)
	}
	if rs := e.reg.Readers(""); len(rs) != 0 {
		t.Fatalf("readers after removal: %+v", rs)
	}
}

func mustString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
