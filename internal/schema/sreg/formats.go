package sreg

import (
	"github.com/spoolmq/spool/internal/schema"
	"github.com/spoolmq/spool/internal/schema/savro"
	"github.com/spoolmq/spool/internal/schema/sjson"
	"github.com/spoolmq/spool/internal/schema/sproto"
)

// Formats returns the schema formats the registry serves.
func Formats() map[schema.Type]schema.Format {
	return map[schema.Type]schema.Format{
		schema.Avro:     savro.Format{},
		schema.JSON:     sjson.Format{},
		schema.Protobuf: sproto.Format{},
	}
}
