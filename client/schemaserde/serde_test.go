package schemaserde_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bufbuild/protocompile"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/spoolmq/spool/client"
	"github.com/spoolmq/spool/client/schemaserde"
	"github.com/spoolmq/spool/internal/spooltest"
)

// counter is a RoundTripper counting the requests by method and path.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) RoundTrip(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.n[req.Method+" "+req.URL.Path]++
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

func (c *counter) count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

type env struct {
	srv  *spooltest.Server
	reg  *schemaserde.Registry
	reqs *counter
	ctx  context.Context
}

func start(t *testing.T) *env {
	t.Helper()
	s := spooltest.StartServer(t)
	reqs := &counter{n: map[string]int{}}
	reg, err := schemaserde.NewRegistry("http://"+s.Server().SchemaRegistryAddr(),
		schemaserde.WithHTTPClient(&http.Client{Transport: reqs}), schemaserde.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return &env{srv: s, reg: reg, reqs: reqs, ctx: t.Context()}
}

const userV1 = `{"type":"record","name":"User","namespace":"com.acme","fields":[
	{"name":"name","type":"string"},
	{"name":"age","type":"int"}]}`

// userV2 adds a field with a default: a reader of v1 data fills it in.
const userV2 = `{"type":"record","name":"User","namespace":"com.acme","fields":[
	{"name":"name","type":"string"},
	{"name":"age","type":"int"},
	{"name":"email","type":"string","default":"none"}]}`

type userV1Go struct {
	Name string `avro:"name"`
	Age  int32  `avro:"age"`
}

type userV2Go struct {
	Name  string `avro:"name"`
	Age   int32  `avro:"age"`
	Email string `avro:"email"`
}

// checkHeader checks b's header with franz-go's reader: the magic byte, id
// and (for Protobuf) the message indexes.
func checkHeader(t *testing.T, b []byte, id int, indexes []int) []byte {
	t.Helper()
	var ch sr.ConfluentHeader
	gotID, rest, err := ch.DecodeID(b)
	if err != nil || gotID != id {
		t.Fatalf("header of %x: id %d %v, want %d", b, gotID, err, id)
	}
	if indexes != nil {
		idx, r, err := ch.DecodeIndex(rest, 64)
		if err != nil || !slices.Equal(idx, indexes) {
			t.Fatalf("header of %x: indexes %v %v, want %v", b, idx, err, indexes)
		}
		rest = r
	}
	want, _ := ch.AppendEncode(nil, id, indexes)
	if !bytes.HasPrefix(b, want) {
		t.Fatalf("header of %x, want %x", b, want)
	}
	return rest
}

func TestAvroRoundTrip(t *testing.T) {
	e := start(t)
	users, err := schemaserde.NewAvro(e.reg, "users-value", userV1)
	if err != nil {
		t.Fatal(err)
	}
	in := userV1Go{Name: "Ada", Age: 36}
	b, err := users.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	// Auto-registered: the subject's version 1.
	got, err := e.reg.Latest(e.ctx, "users-value")
	if err != nil || got.Version != 1 || got.Type != schemaserde.Avro {
		t.Fatalf("Latest: %+v %v", got, err)
	}
	id, err := users.ID(e.ctx)
	if err != nil || id != got.ID {
		t.Fatalf("ID %d %v, registered as %d", id, err, got.ID)
	}
	payload := checkHeader(t, b, id, nil)
	// The payload is plain Avro: "Ada" (zigzag length 3), 36 (zigzag 72).
	if want := []byte{6, 'A', 'd', 'a', 72}; !bytes.Equal(payload, want) {
		t.Fatalf("payload %x, want %x", payload, want)
	}
	var out userV1Go
	if err := users.Decode(b, &out); err != nil || out != in {
		t.Fatalf("Decode: %+v %v", out, err)
	}
	// AppendEncode appends after what dst holds.
	b2, err := users.AppendEncode([]byte("xy"), in)
	if err != nil || !bytes.Equal(b2, append([]byte("xy"), b...)) {
		t.Fatalf("AppendEncode: %x %v", b2, err)
	}
	// A value the schema cannot hold.
	if _, err := users.Encode(map[string]any{"name": 1}); err == nil {
		t.Fatal("Encode of a bad value: no error")
	}
	// Trailing bytes after the value.
	if err := users.Decode(append(b, 0), &out); err == nil {
		t.Fatal("Decode with trailing bytes: no error")
	}
	// Truncated value.
	if err := users.Decode(b[:len(b)-2], &out); err == nil {
		t.Fatal("Decode of a truncated value: no error")
	}
}

// Data written with v1 is read by a v2 reader (the new field takes its
// default) and v2 data by a v1 reader (the new field is skipped).
func TestAvroEvolution(t *testing.T) {
	e := start(t)
	v1, err := schemaserde.NewAvro(e.reg, "users-value", userV1)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := schemaserde.NewAvro(e.reg, "users-value", userV2)
	if err != nil {
		t.Fatal(err)
	}
	b1, err := v1.Encode(userV1Go{Name: "Ada", Age: 36})
	if err != nil {
		t.Fatal(err)
	}
	b2, err := v2.Encode(userV2Go{Name: "Grace", Age: 45, Email: "grace@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	id1, _ := v1.ID(e.ctx)
	id2, _ := v2.ID(e.ctx)
	if id1 == id2 {
		t.Fatalf("v1 and v2 have the same id %d", id1)
	}
	var u2 userV2Go
	if err := v2.Decode(b1, &u2); err != nil || u2 != (userV2Go{Name: "Ada", Age: 36, Email: "none"}) {
		t.Fatalf("v1 data read as v2: %+v %v", u2, err)
	}
	var u1 userV1Go
	if err := v1.Decode(b2, &u1); err != nil || u1 != (userV1Go{Name: "Grace", Age: 45}) {
		t.Fatalf("v2 data read as v1: %+v %v", u1, err)
	}
	// A v2 serde writing with v1 (a fixed id) writes v1's encoding.
	old, err := schemaserde.NewAvro(e.reg, "users-value", userV2, schemaserde.UseSchemaID(id1))
	if err != nil {
		t.Fatal(err)
	}
	b, err := old.Encode(map[string]any{"name": "Ada", "age": 36})
	if err != nil || !bytes.Equal(b, b1) {
		t.Fatalf("UseSchemaID(v1): %x %v, want %x", b, err, b1)
	}
	// UseLatest writes with v2 and never registers.
	latest, err := schemaserde.NewAvro(e.reg, "users-value", userV1, schemaserde.UseLatest())
	if err != nil {
		t.Fatal(err)
	}
	if id, err := latest.ID(e.ctx); err != nil || id != id2 {
		t.Fatalf("UseLatest: id %d %v, want %d", id, err, id2)
	}
	// Register and Lookup give the versions.
	if id, ver, err := e.reg.Register(e.ctx, "users-value", schemaserde.Schema{Text: userV2}); err != nil || id != id2 || ver != 2 {
		t.Fatalf("Register(v2 again): %d %d %v", id, ver, err)
	}
	if ss, err := e.reg.Lookup(e.ctx, "users-value", schemaserde.Schema{Text: userV1}); err != nil || ss.ID != id1 || ss.Version != 1 || ss.Subject != "users-value" {
		t.Fatalf("Lookup(v1): %+v %v", ss, err)
	}
}

// An Avro schema with a reference to a type registered under another
// subject.
func TestAvroReferences(t *testing.T) {
	e := start(t)
	const addr = `{"type":"record","name":"Address","namespace":"com.acme","fields":[{"name":"city","type":"string"}]}`
	if _, _, err := e.reg.Register(e.ctx, "address", schemaserde.Schema{Type: schemaserde.Avro, Text: addr}); err != nil {
		t.Fatal(err)
	}
	const person = `{"type":"record","name":"Person","namespace":"com.acme","fields":[{"name":"name","type":"string"},{"name":"home","type":"Address"}]}`
	people, err := schemaserde.NewAvro(e.reg, "people-value", person,
		schemaserde.WithReferences(schemaserde.Reference{Name: "com.acme.Address", Subject: "address", Version: 1}))
	if err != nil {
		t.Fatal(err)
	}
	in := map[string]any{"name": "Ada", "home": map[string]any{"city": "London"}}
	b, err := people.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := people.Decode(b, &out); err != nil || !reflect.DeepEqual(out, in) {
		t.Fatalf("Decode: %v %v", out, err)
	}
	ss, err := e.reg.Latest(e.ctx, "people-value")
	if err != nil || len(ss.References) != 1 || ss.References[0].Subject != "address" {
		t.Fatalf("Latest: %+v %v", ss, err)
	}
}

const orderSchema = `{
  "type": "object",
  "properties": {
    "id": {"type": "integer"},
    "items": {"type": "array", "items": {"type": "string"}},
    "total": {"type": "number", "minimum": 0}
  },
  "required": ["id", "total"]
}`

type order struct {
	ID    int      `json:"id"`
	Items []string `json:"items,omitempty"`
	Total float64  `json:"total"`
}

func TestJSONRoundTrip(t *testing.T) {
	e := start(t)
	orders, err := schemaserde.NewJSON(e.reg, "orders-value", orderSchema, schemaserde.Validate())
	if err != nil {
		t.Fatal(err)
	}
	in := order{ID: 7, Items: []string{"tea"}, Total: 3.5}
	b, err := orders.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := e.reg.Latest(e.ctx, "orders-value")
	if err != nil || ss.Type != schemaserde.JSON {
		t.Fatalf("Latest: %+v %v", ss, err)
	}
	payload := checkHeader(t, b, ss.ID, nil)
	if string(payload) != `{"id":7,"items":["tea"],"total":3.5}` {
		t.Fatalf("payload %s", payload)
	}
	var out order
	if err := orders.Decode(b, &out); err != nil || !reflect.DeepEqual(out, in) {
		t.Fatalf("Decode: %+v %v", out, err)
	}
	// Validation rejects a value the schema does not allow.
	if _, err := orders.Encode(order{ID: 8, Total: -1}); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("Encode of an invalid value: %v", err)
	}
	if _, err := orders.Encode(map[string]any{"id": 9}); err == nil {
		t.Fatal("Encode without a required property: no error")
	}
	// And so does decoding a message that does not match.
	bad := schemaserde.AppendHeader(nil, ss.ID)
	bad = append(bad, `{"id":"x","total":1}`...)
	if err := orders.Decode(bad, &out); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("Decode of an invalid message: %v", err)
	}
	// Without Validate, it is decoded as encoding/json can.
	loose, err := schemaserde.NewJSON(e.reg, "orders-value", orderSchema)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := loose.Decode(bad, &m); err != nil || m["id"] != "x" {
		t.Fatalf("Decode without validation: %v %v", m, err)
	}
	if _, err := schemaserde.NewJSON(e.reg, "x", `{"type":`); err == nil {
		t.Fatal("NewJSON of a schema that is not JSON: no error")
	}
	if _, err := schemaserde.NewJSON(e.reg, "x", `{"type":"nope"}`, schemaserde.Validate()); err == nil {
		t.Fatal("NewJSON of an invalid schema with Validate: no error")
	}
}

// A JSON Schema with a $ref to a schema registered under another subject,
// validated on both sides.
func TestJSONReferences(t *testing.T) {
	e := start(t)
	const money = `{"type":"object","properties":{"amount":{"type":"number","minimum":0},"currency":{"type":"string"}},"required":["amount","currency"]}`
	if _, _, err := e.reg.Register(e.ctx, "money", schemaserde.Schema{Type: schemaserde.JSON, Text: money}); err != nil {
		t.Fatal(err)
	}
	const payment = `{"type":"object","properties":{"id":{"type":"string"},"price":{"$ref":"money.json"}},"required":["id","price"]}`
	payments, err := schemaserde.NewJSON(e.reg, "payments-value", payment, schemaserde.Validate(),
		schemaserde.WithReferences(schemaserde.Reference{Name: "money.json", Subject: "money", Version: 1}))
	if err != nil {
		t.Fatal(err)
	}
	in := map[string]any{"id": "p1", "price": map[string]any{"amount": 3.5, "currency": "EUR"}}
	b, err := payments.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := payments.Decode(b, &out); err != nil || !reflect.DeepEqual(out, in) {
		t.Fatalf("Decode: %v %v", out, err)
	}
	// The referenced schema's rules apply.
	if _, err := payments.Encode(map[string]any{"id": "p2", "price": map[string]any{"amount": -1, "currency": "EUR"}}); err == nil {
		t.Fatal("Encode of a negative amount: no error")
	}
}

// shopProto has the message the test encodes (Order.Line) neither first in
// the file nor at its top level.
const shopProto = `syntax = "proto3";
package shop;

message Customer {
  string name = 1;
}

message Order {
  message Note {
    string text = 1;
  }
  message Line {
    string sku = 1;
    int32 qty = 2;
    enum Kind {
      KIND_UNSPECIFIED = 0;
      KIND_GIFT = 1;
    }
    Kind kind = 3;
  }
  repeated Line lines = 1;
}
`

func compileProto(t *testing.T, text string) protoreflect.FileDescriptor {
	t.Helper()
	c := protocompile.Compiler{Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
		Accessor: protocompile.SourceAccessorFromMap(map[string]string{"shop.proto": text}),
	})}
	files, err := c.Compile(t.Context(), "shop.proto")
	if err != nil {
		t.Fatal(err)
	}
	return files[0]
}

func TestProtobufRoundTrip(t *testing.T) {
	e := start(t)
	fd := compileProto(t, shopProto)
	lineDesc := fd.Messages().ByName("Order").Messages().ByName("Line")
	if got := schemaserde.MessageIndexes(lineDesc); !slices.Equal(got, []int{1, 1}) {
		t.Fatalf("MessageIndexes(Order.Line) = %v", got)
	}
	lines, err := schemaserde.NewProtobuf(e.reg, "lines-value", shopProto, dynamicpb.NewMessage(lineDesc))
	if err != nil {
		t.Fatal(err)
	}
	in := dynamicpb.NewMessage(lineDesc)
	in.Set(lineDesc.Fields().ByName("sku"), protoreflect.ValueOfString("tea-01"))
	in.Set(lineDesc.Fields().ByName("qty"), protoreflect.ValueOfInt32(3))
	in.Set(lineDesc.Fields().ByName("kind"), protoreflect.ValueOfEnum(1))
	b, err := lines.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := e.reg.Latest(e.ctx, "lines-value")
	if err != nil || ss.Type != schemaserde.Protobuf {
		t.Fatalf("Latest: %+v %v", ss, err)
	}
	payload := checkHeader(t, b, ss.ID, []int{1, 1})
	// The payload is the plain Protobuf encoding.
	plain := dynamicpb.NewMessage(lineDesc)
	if err := proto.Unmarshal(payload, plain); err != nil || !proto.Equal(plain, in) {
		t.Fatalf("payload %x: %v %v", payload, plain, err)
	}
	out := dynamicpb.NewMessage(lineDesc)
	if err := lines.Decode(b, out); err != nil || !proto.Equal(out, in) {
		t.Fatalf("Decode: %v %v", out, err)
	}

	// The first message of the file is written with the single byte 0.
	custDesc := fd.Messages().ByName("Customer")
	customers, err := schemaserde.NewProtobuf(e.reg, "customers-value", shopProto, dynamicpb.NewMessage(custDesc))
	if err != nil {
		t.Fatal(err)
	}
	c := dynamicpb.NewMessage(custDesc)
	c.Set(custDesc.Fields().ByName("name"), protoreflect.ValueOfString("Ada"))
	cb, err := customers.Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	checkHeader(t, cb, ss.ID, []int{0}) // the same schema, the same id
	if cb[5] != 0 {
		t.Fatalf("indexes of the first message: %x", cb[5:])
	}
	// A Customer message is not read as an Order.Line, nor the other way.
	if err := lines.Decode(cb, out); err == nil || !strings.Contains(err.Error(), "message indexes") {
		t.Fatalf("Decode of another message type: %v", err)
	}
	if err := customers.Decode(b, dynamicpb.NewMessage(custDesc)); err == nil {
		t.Fatal("Decode of an Order.Line as a Customer: no error")
	}
	// Encode and Decode take only messages of the Serde's type.
	if _, err := lines.Encode(c); err == nil {
		t.Fatal("Encode of a Customer with the Order.Line serde: no error")
	}
	if err := lines.Decode(b, dynamicpb.NewMessage(custDesc)); err == nil {
		t.Fatal("Decode into a Customer with the Order.Line serde: no error")
	}
	if _, err := lines.Encode("not a message"); err == nil {
		t.Fatal("Encode of a string: no error")
	}
}

// A schema is fetched by id once, whatever the number of messages and
// decoding goroutines.
func TestSchemaByIDCached(t *testing.T) {
	e := start(t)
	writer, err := schemaserde.NewAvro(e.reg, "users-value", userV1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := writer.Encode(userV1Go{Name: "Ada", Age: 36})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := writer.ID(e.ctx)
	path := "GET /schemas/ids/" + itoa(id)
	// Decoders of their own, on the same Registry.
	var wg sync.WaitGroup
	var fails atomic.Int32
	for range 4 {
		reader, err := schemaserde.NewAvro(e.reg, "users-value", userV2)
		if err != nil {
			t.Fatal(err)
		}
		for range 4 {
			wg.Go(func() {
				for range 50 {
					var u userV2Go
					if err := reader.Decode(b, &u); err != nil || u.Name != "Ada" {
						fails.Add(1)
					}
				}
			})
		}
	}
	wg.Wait()
	if fails.Load() > 0 {
		t.Fatalf("%d decodes failed", fails.Load())
	}
	for range 3 {
		if s, err := e.reg.SchemaByID(e.ctx, id); err != nil || s.Text == "" || s.Type != schemaserde.Avro {
			t.Fatalf("SchemaByID: %+v %v", s, err)
		}
	}
	if n := e.reqs.count(path); n != 1 {
		t.Fatalf("%s sent %d times, want once", path, n)
	}
	// An unknown id is asked again (it may be registered later).
	for range 2 {
		if _, err := e.reg.SchemaByID(e.ctx, 999); schemaserde.ErrorCode(err) != schemaserde.CodeSchemaNotFound {
			t.Fatalf("SchemaByID(999): %v", err)
		}
	}
	if n := e.reqs.count("GET /schemas/ids/999"); n != 2 {
		t.Fatalf("unknown id asked %d times", n)
	}
}

func itoa(i int) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + i%10)}, b...)
		if i /= 10; i == 0 {
			return string(b)
		}
	}
}

func TestErrors(t *testing.T) {
	e := start(t)
	// Unknown subject.
	_, err := e.reg.Latest(e.ctx, "nobody")
	var re *schemaserde.Error
	if !errors.As(err, &re) || re.Code != schemaserde.CodeSubjectNotFound || re.StatusCode != http.StatusNotFound {
		t.Fatalf("Latest(unknown): %v", err)
	}
	if _, err := e.reg.Lookup(e.ctx, "nobody", schemaserde.Schema{Text: userV1}); schemaserde.ErrorCode(err) != schemaserde.CodeSubjectNotFound {
		t.Fatalf("Lookup(unknown subject): %v", err)
	}
	if _, err := e.reg.Version(e.ctx, "nobody", 1); schemaserde.ErrorCode(err) != schemaserde.CodeSubjectNotFound {
		t.Fatalf("Version(unknown subject): %v", err)
	}
	// LookupSchema never registers.
	lookup, err := schemaserde.NewAvro(e.reg, "users-value", userV1, schemaserde.LookupSchema())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lookup.Encode(userV1Go{}); schemaserde.ErrorCode(err) != schemaserde.CodeSubjectNotFound {
		t.Fatalf("LookupSchema of an unregistered schema: %v", err)
	}
	v1, err := schemaserde.NewAvro(e.reg, "users-value", userV1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := v1.Encode(userV1Go{Name: "Ada", Age: 36})
	if err != nil {
		t.Fatal(err)
	}
	// It works once the schema is registered: the failure is not kept.
	if lb, err := lookup.Encode(userV1Go{Name: "Ada", Age: 36}); err != nil || !bytes.Equal(lb, b) {
		t.Fatalf("LookupSchema after registration: %x %v", lb, err)
	}
	// A schema the subject's (BACKWARD) level rejects: a field changes type.
	incompatible := strings.Replace(userV1, `"type":"int"`, `"type":"string"`, 1)
	_, _, err = e.reg.Register(e.ctx, "users-value", schemaserde.Schema{Text: incompatible})
	if !errors.As(err, &re) || re.Code != schemaserde.CodeIncompatible || re.StatusCode != http.StatusConflict {
		t.Fatalf("Register(incompatible): %v", err)
	}
	bad, err := schemaserde.NewAvro(e.reg, "users-value", incompatible)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Encode(map[string]any{"name": "x", "age": "y"}); schemaserde.ErrorCode(err) != schemaserde.CodeIncompatible {
		t.Fatalf("Encode with an incompatible schema: %v", err)
	}
	// An invalid schema.
	if _, _, err := e.reg.Register(e.ctx, "users-value", schemaserde.Schema{Text: `{"type":"record"}`}); schemaserde.ErrorCode(err) != schemaserde.CodeInvalidSchema {
		t.Fatalf("Register(invalid): %v", err)
	}
	if _, err := schemaserde.NewAvro(e.reg, "x", `{"type":"record"}`); err == nil {
		t.Fatal("NewAvro of an invalid schema: no error")
	}

	var u userV1Go
	// Truncated header, wrong magic byte.
	for _, m := range [][]byte{nil, b[:3], {1, 0, 0, 0, 1, 6, 'A', 'd', 'a', 72}} {
		if err := v1.Decode(m, &u); !errors.Is(err, schemaserde.ErrInvalidHeader) {
			t.Fatalf("Decode(%x): %v", m, err)
		}
	}
	// Unknown id.
	unknown := append(schemaserde.AppendHeader(nil, 4242), b[5:]...)
	if err := v1.Decode(unknown, &u); schemaserde.ErrorCode(err) != schemaserde.CodeSchemaNotFound {
		t.Fatalf("Decode(unknown id): %v", err)
	}
	// An id whose schema is of another format.
	orders, err := schemaserde.NewJSON(e.reg, "orders-value", orderSchema)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := orders.Encode(order{ID: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := v1.Decode(jb, &u); err == nil || !strings.Contains(err.Error(), "is JSON, not AVRO") {
		t.Fatalf("Decode of a JSON message as Avro: %v", err)
	}
	// A writer schema that does not resolve to the reader's.
	other, err := schemaserde.NewAvro(e.reg, "other-value", `{"type":"record","name":"Other","fields":[{"name":"n","type":"long"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	ob, err := other.Encode(map[string]any{"n": int64(1)})
	if err != nil {
		t.Fatal(err)
	}
	if err := v1.Decode(ob, &u); err == nil || !strings.Contains(err.Error(), "resolve") {
		t.Fatalf("Decode of an unrelated record: %v", err)
	}
	// UseSchemaID of a schema of another format.
	jid, _ := orders.ID(e.ctx)
	wrong, err := schemaserde.NewAvro(e.reg, "users-value", userV1, schemaserde.UseSchemaID(jid))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wrong.Encode(userV1Go{}); err == nil || !strings.Contains(err.Error(), "not AVRO") {
		t.Fatalf("UseSchemaID of a JSON schema: %v", err)
	}
	if _, err := schemaserde.NewAvro(e.reg, "users-value", userV1, schemaserde.UseSchemaID(0)); err == nil {
		t.Fatal("UseSchemaID(0): no error")
	}
	if _, err := schemaserde.NewAvro(e.reg, "", userV1); err == nil {
		t.Fatal("empty subject: no error")
	}
}

func TestNewRegistry(t *testing.T) {
	for _, bad := range []string{"", " , ", "ftp://x", "http://", "http://h:1/?q=1", "http://a b"} {
		if _, err := schemaserde.NewRegistry(bad); err == nil {
			t.Errorf("NewRegistry(%q): no error", bad)
		}
	}
	if _, err := schemaserde.NewRegistry("h:1", schemaserde.WithTimeout(-1)); err == nil {
		t.Error("negative timeout: no error")
	}
}

// A registry that cannot be reached is skipped for the next URL; a 4xx
// answer is not retried elsewhere.
func TestRegistryFailover(t *testing.T) {
	e := start(t)
	reg, err := schemaserde.NewRegistry("127.0.0.1:1, "+e.srv.Server().SchemaRegistryAddr(), schemaserde.WithBasicAuth("u", "p"))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		id, ver, err := reg.Register(e.ctx, "s", schemaserde.Schema{Text: `"string"`})
		if err != nil || id < 1 || ver != 1 {
			t.Fatalf("Register: %d %d %v", id, ver, err)
		}
	}
	if _, err := reg.Latest(e.ctx, "nobody"); schemaserde.ErrorCode(err) != schemaserde.CodeSubjectNotFound {
		t.Fatalf("Latest(unknown): %v", err)
	}
	// A registry that is down everywhere: the connection error.
	down, err := schemaserde.NewRegistry("127.0.0.1:1", schemaserde.WithTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := down.SchemaByID(e.ctx, 1); err == nil || schemaserde.ErrorCode(err) != 0 {
		t.Fatalf("SchemaByID on a closed port: %v", err)
	}
}

// Values encoded by a Serde travel through a Spool topic as message values.
func TestPublishAndRead(t *testing.T) {
	e := start(t)
	c := e.srv.Client()
	if _, err := c.CreateTopic(e.ctx, "users", client.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	users, err := schemaserde.NewAvro(e.reg, "users-value", userV1)
	if err != nil {
		t.Fatal(err)
	}
	want := []userV1Go{{"Ada", 36}, {"Grace", 45}}
	for _, u := range want {
		b, err := users.Encode(u)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Publish(e.ctx, "users", client.Message{Key: []byte(u.Name), Value: b}); err != nil {
			t.Fatal(err)
		}
	}
	var got []userV1Go
	for m, err := range c.ReadTopic(e.ctx, "users") {
		if err != nil {
			t.Fatal(err)
		}
		var u userV1Go
		if err := users.Decode(m.Value, &u); err != nil {
			t.Fatal(err)
		}
		got = append(got, u)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("read %v, want %v", got, want)
	}
}
