package sjson

import "github.com/spoolmq/spool/internal/schema"

var _ schema.Decoder = (*jsonSchema)(nil)

// DecodeJSON returns a JSON payload as it is, once it validates.
func (s *jsonSchema) DecodeJSON(payload []byte, _ []int) ([]byte, error) {
	if err := s.Validate(payload, nil); err != nil {
		return nil, err
	}
	return payload, nil
}
