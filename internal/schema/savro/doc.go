// Package savro is a schema format (internal/schema).
package savro

import _ "github.com/twmb/avro"
