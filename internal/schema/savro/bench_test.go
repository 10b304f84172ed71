package savro

import (
	"testing"

	"github.com/twmb/avro"
)

// benchSchema is a typical event: strings, numbers, a nested record, an
// array, a map, an enum and an optional field.
const benchSchema = `{
  "type": "record", "name": "Order", "namespace": "shop.events",
  "fields": [
    {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
    {"name": "customer", "type": "string"},
    {"name": "created", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "quantity", "type": "int"},
    {"name": "price", "type": "double"},
    {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID", "SHIPPED", "CANCELLED"]}},
    {"name": "address", "type": {"type": "record", "name": "Address", "fields": [
      {"name": "street", "type": "string"},
      {"name": "city", "type": "string"},
      {"name": "zip", "type": "string"},
      {"name": "country", "type": "string"}
    ]}},
    {"name": "items", "type": {"type": "array", "items": "string"}},
    {"name": "attributes", "type": {"type": "map", "values": "string"}},
    {"name": "coupon", "type": ["null", "string"], "default": null},
    {"name": "gift", "type": "boolean"}
  ]
}`

func benchValue() map[string]any {
	return map[string]any{
		"id":       "0b7e4a52-6f5e-4d7c-9a36-3d1f0f5a2c11",
		"customer": "Ada Lovelace <ada@example.org>",
		"created":  int64(1767225600000),
		"quantity": int32(3),
		"price":    129.95,
		"status":   "PAID",
		"address": map[string]any{
			"street": "12 Analytical Engine Street", "city": "London",
			"zip": "NW1 6XE", "country": "United Kingdom",
		},
		"items":      []any{"SKU-100234 notebook", "SKU-200811 pen set", "SKU-300017 ink bottle"},
		"attributes": map[string]any{"channel": "web", "campaign": "spring-sale-2026"},
		"coupon":     "SPRING10",
		"gift":       true,
	}
}

func BenchmarkValidate(b *testing.B) {
	s, err := parse(benchSchema, nil)
	if err != nil {
		b.Fatal(err)
	}
	payload, err := s.lib.Encode(benchValue())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Validate(payload, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLibraryDecode is the library's decode of the same payload into
// generic values, for comparison.
func BenchmarkLibraryDecode(b *testing.B) {
	lib := avro.MustParse(benchSchema)
	payload, err := lib.Encode(benchValue())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		var v any
		if _, err := lib.Decode(payload, &v); err != nil {
			b.Fatal(err)
		}
	}
}

func TestBenchPayloadSize(t *testing.T) {
	s, err := parse(benchSchema, nil)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := s.lib.Encode(benchValue())
	if err != nil {
		t.Fatal(err)
	}
	if len(payload) < 200 || len(payload) > 300 {
		t.Errorf("benchmark payload is %d bytes, want about 256", len(payload))
	}
	if err := s.Validate(payload, nil); err != nil {
		t.Fatal(err)
	}
	t.Log(s.Canonical())
}
