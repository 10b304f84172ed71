package auth

import (
	"context"
	"testing"
)

func TestPrincipal(t *testing.T) {
	ctx := context.Background()
	if p := Principal(ctx); p != "" {
		t.Fatalf("anonymous: %q", p)
	}
	if p := Principal(WithPrincipal(ctx, "alice")); p != "alice" {
		t.Fatalf("got %q, want alice", p)
	}
}
