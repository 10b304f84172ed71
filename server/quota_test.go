package server

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/internal/quota"
)

// A user's quota holds that user, authenticated by SASL on Kafka or by an
// API key on the native API, and not another user.
func TestQuotaPerUser(t *testing.T) {
	srv := startAuth(t, AuthConfig{Enabled: true, AllowPlainWithoutTLS: true}, TLSConfig{})
	if err := srv.users.AddUser("bob", "bob-secret"); err != nil {
		t.Fatal(err)
	}
	if err := srv.quotas.Alter(quota.Entity{User: "alice"}, map[string]float64{quota.KeyRequestRate: 2}, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	throttled := func(user, pass string) int {
		kc := kafkaClient(t, srv, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()))
		n := 0
		for range 12 {
			resp, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, kc)
			if err != nil {
				t.Fatalf("%s: %v", user, err)
			}
			if resp.ThrottleMillis > 0 {
				n++
			}
		}
		return n
	}
	if n := throttled("alice", "alice-secret"); n == 0 {
		t.Fatal("alice's Kafka requests were not throttled")
	}
	if n := throttled("bob", "bob-secret"); n != 0 {
		t.Fatalf("bob's Kafka requests were throttled %d times", n)
	}

	refused := func(user string) int {
		tok, _, err := srv.users.NewKey(user, 0)
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.New("http://"+srv.HTTPAddr(), client.WithAPIKey(tok))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		n := 0
		for range 12 {
			_, err := c.ListTopics(ctx)
			var e *client.Error
			if errors.As(err, &e) && e.Code == "resource_exhausted" && e.RetryAfter > 0 {
				n++
			} else if err != nil {
				t.Fatalf("%s: %v", user, err)
			}
		}
		return n
	}
	if n := refused("alice"); n == 0 {
		t.Fatal("alice's native calls were not refused")
	}
	if n := refused("bob"); n != 0 {
		t.Fatalf("bob's native calls were refused %d times", n)
	}
}
