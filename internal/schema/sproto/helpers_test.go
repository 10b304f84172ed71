package sproto

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/spoolmq/spool/internal/schema"
)

// orderProto is a realistic schema: scalars, an enum, a nested message,
// repeated fields, an optional field, a map and a well-known import.
const orderProto = `
syntax = "proto3";
package acme;

import "google/protobuf/timestamp.proto";

message Order {
  enum Status {
    STATUS_UNSPECIFIED = 0;
    PLACED = 1;
    SHIPPED = 2;
  }
  string id = 1;
  string customer = 2;
  int64 amount_cents = 3;
  uint32 quantity = 4;
  Status status = 5;
  Address ship_to = 6;
  repeated Item items = 7;
  repeated string tags = 8;
  optional string note = 9;
  google.protobuf.Timestamp created = 10;
  bool gift = 11;
  double weight = 12;
  map<string, string> labels = 13;
}

message Address {
  string street = 1;
  string city = 2;
  string country = 3;
  string zip = 4;
}

message Item {
  string sku = 1;
  int32 count = 2;
  int64 price_cents = 3;
}
`

// orderJSON is an acme.Order of about 256 bytes once encoded.
const orderJSON = `{
  "id": "ord-7f3a9c2e-5b1d-4e8a",
  "customer": "cust-000193847",
  "amountCents": "1299900",
  "quantity": 3,
  "status": "SHIPPED",
  "shipTo": {"street": "1428 Elm Street, Apt 3", "city": "Springwood", "country": "US", "zip": "90210"},
  "items": [
    {"sku": "SKU-CHAIR-OAK-01", "count": 2, "priceCents": "45000"},
    {"sku": "SKU-TABLE-WAL-07", "count": 1, "priceCents": "899900"}
  ],
  "tags": ["priority", "fragile", "gift-wrap"],
  "note": "leave at the back door",
  "created": "2025-03-14T15:09:26.535Z",
  "gift": true,
  "weight": 42.5,
  "labels": {"channel": "web", "region": "us-west"}
}`

func mustParse(t testing.TB, text string, deps ...schema.Dep) *protoSchema {
	t.Helper()
	s, err := Format{}.Parse(text, deps)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return s.(*protoSchema)
}

// encode encodes the JSON form of a message of the type indexes select.
func encode(t testing.TB, s *protoSchema, indexes []int, js string) []byte {
	t.Helper()
	m, err := s.message(indexes)
	if err != nil {
		t.Fatal(err)
	}
	msg := dynamicpb.NewMessage(m.desc)
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal([]byte(js), msg); err != nil {
		t.Fatalf("protojson: %v", err)
	}
	b, err := proto.MarshalOptions{AllowPartial: true}.Marshal(msg)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	return b
}

// decodes reports whether protobuf-go's decoder accepts payload as the
// message desc, with the bounds Validate documents.
// A decoder panic (protobuf-go's dynamic messages panic on a map entry
// whose key has the wrong wire type) counts as a rejection.
func decodes(desc protoreflect.MessageDescriptor, payload []byte) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("the decoder panicked: %v", p)
		}
	}()
	return proto.UnmarshalOptions{RecursionLimit: schema.MaxDepth}.Unmarshal(payload, dynamicpb.NewMessage(desc))
}
