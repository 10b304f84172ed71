package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/internal/schema/sreg"
	"github.com/spoolmq/spool/internal/spooltest"
)

const (
	catUserV1 = `{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}`
	catUserV2 = `{"type":"object","description":"A user.","properties":{"name":{"type":"string"}},"required":["name"]}`
)

// catHTTP sends a request and returns the status and body.
func catHTTP(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func getCatalog(t *testing.T, s *spooltest.Server, query string) []sreg.EventType {
	t.Helper()
	code, body := catHTTP(t, "GET", s.URL()+"/catalog"+query, "")
	if code != 200 {
		t.Fatalf("GET /catalog%s: %d %s", query, code, body)
	}
	var out []sreg.EventType
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("GET /catalog: %v\n%s", err, body)
	}
	return out
}

func TestCatalogAcrossRestart(t *testing.T) {
	s := spooltest.StartServer(t)
	reg := "http://" + s.Server().SchemaRegistryAddr()
	ctx := context.Background()
	for _, sch := range []string{catUserV1, catUserV2} {
		b, _ := json.Marshal(map[string]string{"schema": sch, "schemaType": "JSON"})
		if code, body := catHTTP(t, "POST", reg+"/subjects/users-value/versions", string(b)); code != 200 {
			t.Fatalf("register: %d %s", code, body)
		}
	}
	c := s.Client()
	if _, err := c.CreateTopic(ctx, "users", client.TopicConfig{Partitions: 3, SchemaSubject: "users-value",
		Owner: "identity", Description: "A user signed up.", Labels: map[string]string{"tier": "1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateTopic(ctx, "clicks", client.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"mailer", "search"} {
		if _, err := c.CreateSubscription(ctx, "users", sub, client.SubscriptionConfig{}); err != nil {
			t.Fatal(err)
		}
	}
	if code, body := catHTTP(t, "PUT", reg+"/spool/readers/users/mailer", `{"subject":"users-value","version":1}`); code != 200 {
		t.Fatalf("declare reader: %d %s", code, body)
	}
	for _, name := range []string{"ann", "bob"} {
		m := client.Message{Value: []byte(`{"name":"` + name + `"}`), Headers: []client.Header{{Key: "spool.schema-id", Value: []byte("2")}}}
		if _, err := c.Publish(ctx, "users", m); err != nil {
			t.Fatal(err)
		}
	}

	check := func(when string, produced int64) {
		t.Helper()
		cat := getCatalog(t, s, "")
		if len(cat) != 2 || cat[0].Topic != "clicks" || cat[1].Topic != "users" {
			t.Fatalf("%s: catalog: %+v", when, cat)
		}
		if c := cat[0]; c.Schema != nil || c.Owner != "" || len(c.Subscriptions) != 0 {
			t.Errorf("%s: clicks: %+v", when, c)
		}
		u := cat[1]
		if u.Owner != "identity" || u.Description != "A user signed up." || u.Labels["tier"] != "1" || u.Partitions != 3 || u.Messages != 2 {
			t.Errorf("%s: users: %+v", when, u)
		}
		sc := u.Schema
		if sc == nil || sc.Subject != "users-value" || sc.Mode != "reject" || sc.LatestVersion != 2 || sc.LatestID != 2 ||
			len(sc.Versions) != 2 || sc.Versions[1].Produced != produced || sc.Versions[0].Produced != 0 {
			t.Errorf("%s: users schema: %+v", when, sc)
		}
		subs := u.Subscriptions
		if len(subs) != 2 || subs[0].Name != "mailer" || subs[0].Reader == nil || *subs[0].Reader != (sreg.EventReader{Subject: "users-value", Version: 1}) ||
			subs[1].Name != "search" || subs[1].Reader != nil {
			t.Errorf("%s: subscriptions: %+v", when, subs)
		}
	}
	check("before the restart", 2)

	// The raw JSON's field names are the documented ones.
	_, body := catHTTP(t, "GET", s.URL()+"/catalog?topic=users&schemas=true", "")
	for _, f := range []string{`"topic":"users"`, `"owner":"identity"`, `"labels":{"tier":"1"}`, `"dead_letter":false`, `"subject":"users-value"`,
		`"latest_version":2`, `"latest_schema":`, `"produced":2`, `"rate_per_second":`, `"rate_window_seconds":`, `"reader":{"subject":"users-value","version":1}`} {
		if !strings.Contains(body, f) {
			t.Errorf("GET /catalog?topic=users&schemas=true lacks %s:\n%s", f, body)
		}
	}
	if code, body := catHTTP(t, "GET", s.URL()+"/catalog?topic=nope", ""); code != 404 || !strings.Contains(body, `"code":"not_found"`) {
		t.Errorf("an unknown topic: %d %s", code, body)
	}
	if code, _ := catHTTP(t, "GET", s.URL()+"/catalog?schemas=maybe", ""); code != 400 {
		t.Errorf("?schemas=maybe: %d", code)
	}

	// Owners, subjects, versions and readers are kept; the produced counts
	// are this node's since it started.
	s.Restart()
	check("after the restart", 0)
	if one := getCatalog(t, s, "?topic=users&schemas=true"); len(one) != 1 || one[0].Schema.LatestSchema != catUserV2 {
		t.Fatalf("one topic with its schema after the restart: %+v", one)
	}
}
