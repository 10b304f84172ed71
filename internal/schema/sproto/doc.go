// Package sproto is the PROTOBUF schema format (internal/schema): it
// compiles .proto text with its imports into descriptors, renders the
// canonical form, checks wire compatibility between two schemas and
// validates Protobuf-encoded payloads.
//
// A schema is one .proto file. Its deps are the files it imports, each
// under its import path; the well-known files under google/protobuf/ are
// always available. Nothing is read from disk.
package sproto
