package client

import (
	"context"
	"slices"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// TestInjectTraceContext: the SDK's own writing of the W3C headers
// matches propagation.TraceContext's, and keeps the caller's headers.
func TestInjectTraceContext(t *testing.T) {
	ts, err := trace.ParseTraceState("vendor=abc,other=1")
	if err != nil {
		t.Fatal(err)
	}
	base := trace.SpanContextConfig{
		TraceID: trace.TraceID{0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31, 0x9c},
		SpanID:  trace.SpanID{0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31},
	}
	for _, c := range []struct {
		flags trace.TraceFlags
		state trace.TraceState
	}{{0, trace.TraceState{}}, {trace.FlagsSampled, trace.TraceState{}}, {0xff, ts}, {trace.FlagsRandom, ts}} {
		cfg := base
		cfg.TraceFlags, cfg.TraceState = c.flags, c.state
		ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(cfg))
		want := propagation.MapCarrier{}
		propagation.TraceContext{}.Inject(ctx, want)

		hs := []Header{{Key: "a", Value: []byte("b")}}
		tr := tracing{prop: propagation.TraceContext{}, fields: propagation.TraceContext{}.Fields()}
		got := tr.inject(ctx, hs[:1:1])
		if len(got) != 1+len(want) || got[0].Key != "a" {
			t.Errorf("flags %v: headers %v, want a then %v", c.flags, got, want)
			continue
		}
		for _, h := range got[1:] {
			if want[h.Key] != string(h.Value) {
				t.Errorf("flags %v: %s = %q, want %q", c.flags, h.Key, h.Value, want[h.Key])
			}
		}
		// Through the generic carrier too (any other propagator).
		c2 := &headerCarrier{hs: slices.Clone(hs)}
		propagation.TraceContext{}.Inject(ctx, c2)
		for _, h := range c2.hs[1:] {
			if want[h.Key] != string(h.Value) {
				t.Errorf("carrier: %s = %q, want %q", h.Key, h.Value, want[h.Key])
			}
		}
	}
	if got := injectTraceContext(trace.SpanContext{}, nil); got != nil {
		t.Errorf("invalid span context: headers %v", got)
	}
}

// TestTracingCarried: a message with a traceparent or tracestate header
// carries a trace context; others do not.
func TestTracingCarried(t *testing.T) {
	tr := newTracing(&clientConfig{})
	if tr.tracer != nil {
		t.Fatal("a tracer without a provider")
	}
	for hs, want := range map[*[]Header]bool{
		{}:                                    false,
		{{Key: "x"}}:                          false,
		{{Key: "x"}, {Key: "traceparent"}}:    true,
		{{Key: "tracestate"}}:                 true,
		{{Key: "Traceparent"}, {Key: "span"}}: false,
	} {
		if got := tr.carried(*hs); got != want {
			t.Errorf("carried(%v) = %v", *hs, got)
		}
	}
}
