package savro

import (
	"fmt"

	"github.com/spoolmq/spool/internal/schema"
)

var _ schema.Decoder = (*Schema)(nil)

// DecodeJSON renders an Avro binary payload as Avro's JSON encoding (unions
// bare, bytes as \u escapes), after checking it as Validate does.
func (s *Schema) DecodeJSON(payload []byte, _ []int) ([]byte, error) {
	if err := s.Validate(payload, nil); err != nil {
		return nil, err
	}
	var v any
	if _, err := s.lib.Decode(payload, &v); err != nil {
		return nil, fmt.Errorf("avro decode: %w", err)
	}
	out, err := s.lib.EncodeJSON(v)
	if err != nil {
		return nil, fmt.Errorf("avro to JSON: %w", err)
	}
	return out, nil
}
