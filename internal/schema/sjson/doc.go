// Package sjson is a schema format (internal/schema).
package sjson

import _ "github.com/santhosh-tekuri/jsonschema/v6"
