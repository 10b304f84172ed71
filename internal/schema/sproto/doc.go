// Package sproto is a schema format (internal/schema).
package sproto

import _ "github.com/bufbuild/protocompile"
