// Package savro is the AVRO schema format (internal/schema): it parses Avro
// schemas, with Confluent-style references to named types defined in other
// schemas, gives their canonical form, checks one schema against another by
// Avro schema resolution and validates Avro binary payloads.
//
// Parsing and the reference compatibility check are the ones of
// github.com/twmb/avro. The package reads the parsed tree into its own
// representation once, at Parse, so that Check can report every
// incompatibility (the library stops at the first) and Validate can walk a
// payload without decoding it into Go values: validation runs on every
// published message and must not allocate.
package savro
