// Package sjson is the JSON Schema format (internal/schema): it parses JSON
// Schemas of drafts 4, 6, 7, 2019-09 and 2020-12 with
// github.com/santhosh-tekuri/jsonschema/v6, gives their canonical form,
// checks whether one can read data written with another, and validates
// payloads.
//
// Schemas and payloads are read by this package's own JSON decoder, which
// bounds nesting, numbers and repeated keys before anything reaches the
// library. References ($ref) resolve only within the schema and to the
// schemas given as deps; nothing is ever loaded from the network or files.
package sjson
