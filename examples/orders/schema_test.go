package orders_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/spoolmq/spool/examples/orders/shop"
)

// checkSchemas checks the schema scenario's claims: every event the run
// put on the orders topic is valid under schemas/order-event.v1.json, and
// the registry finds v2-compatible compatible with it and v2-breaking not
// (what spool schema check asks it).
func checkSchemas(t *testing.T, s *testShop) {
	v1, err := os.ReadFile(filepath.Join("schemas", "order-event.v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(v1))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("mem://order-event.v1.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("mem://order-event.v1.json")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m, err := range s.c.ReadTopic(t.Context(), shop.TopicOrders) {
		if err != nil {
			t.Fatal(err)
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(m.Value))
		if err == nil {
			err = sch.Validate(inst)
		}
		if err != nil {
			t.Errorf("event %s: %v", m.Value, err)
		}
		n++
	}
	if n == 0 {
		t.Error("no events on the orders topic")
	}

	post := func(path, file string) map[string]any {
		t.Helper()
		text, err := os.ReadFile(filepath.Join("schemas", file))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(map[string]string{"schemaType": "JSON", "schema": string(text)})
		resp, err := http.Post(s.registry+path, "application/vnd.schemaregistry.v1+json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s %s: %d %v %v", path, file, resp.StatusCode, out, err)
		}
		return out
	}
	post("/subjects/orders-value/versions", "order-event.v1.json")
	for file, want := range map[string]bool{"order-event.v2-compatible.json": true, "order-event.v2-breaking.json": false} {
		if got := post("/compatibility/subjects/orders-value/versions/latest", file)["is_compatible"]; got != want {
			t.Errorf("%s: is_compatible %v, want %v", file, got, want)
		}
	}
}
