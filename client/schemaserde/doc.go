// Package schemaserde encodes and decodes message values with schemas kept
// in a Confluent-compatible schema registry, such as Spool's (on
// 127.0.0.1:8081 by default), in the Confluent wire format: the magic
// byte 0, the schema id as 4 bytes big-endian, for Protobuf the message
// indexes, then the value's Avro, JSON or Protobuf encoding.
//
// A Registry is a client of the registry's REST API. A Serde, made by
// NewAvro, NewJSON or NewProtobuf for a subject and a schema, encodes
// values into message values (client.Message's Value) and decodes them:
//
//	reg, err := schemaserde.NewRegistry("http://127.0.0.1:8081")
//	orders, err := schemaserde.NewAvro(reg, "orders-value", orderSchema)
//	value, err := orders.Encode(Order{ID: 42, Total: 12.5})
//	// ... publish client.Message{Value: value}, consume it ...
//	var o Order
//	err = orders.Decode(m.Value, &o)
//
// By default a Serde registers its schema at its first Encode; it can
// instead use a schema already registered (LookupSchema), the subject's
// latest version (UseLatest) or a schema id (UseSchemaID). Decode reads
// the schema id of each message and asks the registry for that schema,
// once per id.
//
// AppendHeader, AppendProtobufHeader, ParseHeader and ParseProtobufHeader
// read and write the wire format's header for other encoders.
package schemaserde
