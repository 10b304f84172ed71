package sreg

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"

	"github.com/spoolmq/spool/internal/schema"
)

// Decoded is a message value decoded with the schema it names, for display
// (the web console's message browser).
type Decoded struct {
	ID   int
	Type schema.Type
	// JSON is the payload rendered as JSON (schema.Decoder).
	JSON []byte
	// InSubject says whether the schema is a version of the subject asked
	// about (a bound topic's values must be; older data may not be).
	InSubject bool
}

// DecodeValue decodes a message value with the schema it names: the
// registry's wire format (magic byte 0, a 4-byte schema id, for Protobuf
// the message indexes), or, when schemaID (a spool.schema-id header's
// value) is not nil, the whole value with that schema. named is false when
// the value names no schema (then nothing else is set); err says why a
// value that names one was not decoded (an unknown id, a payload its
// schema refuses). subject, if not "", is the subject the value should
// belong to (Decoded.InSubject).
func (r *Registry) DecodeValue(subject string, value, schemaID []byte) (d Decoded, named bool, err error) {
	payload := value
	wire := schemaID == nil
	if wire {
		if len(value) < 5 || value[0] != 0 {
			return Decoded{}, false, nil
		}
		d.ID = int(binary.BigEndian.Uint32(value[1:5]))
		payload = value[5:]
	} else {
		n, err := strconv.ParseUint(string(schemaID), 10, 31)
		if err != nil {
			return Decoded{}, true, fmt.Errorf("the spool.schema-id header %q is not a schema id", truncate(schemaID, 32))
		}
		d.ID = int(n)
	}
	r.mu.RLock()
	st := r.m.schemas[d.ID]
	var s schema.Schema
	if st != nil {
		d.Type = st.Type
		d.InSubject = subject != "" && slices.ContainsFunc(r.m.versionsOf(d.ID), func(sv SubjectVersion) bool { return sv.Subject == subject })
		s, err = r.parsedByID(r.m, d.ID)
	}
	r.mu.RUnlock()
	if st == nil {
		return d, true, fmt.Errorf("schema id %d is not in the registry", d.ID)
	}
	if err != nil {
		return d, true, fmt.Errorf("schema id %d: %v", d.ID, err)
	}
	var indexes []int
	if wire && d.Type == schema.Protobuf {
		if indexes, payload, err = readIndexes(payload); err != nil {
			return d, true, err
		}
	}
	dec, ok := s.(schema.Decoder)
	if !ok {
		return d, true, fmt.Errorf("schema id %d (%s): no JSON rendering for this type", d.ID, d.Type)
	}
	js, err := dec.DecodeJSON(payload, indexes)
	if err != nil {
		return d, true, fmt.Errorf("schema id %d (%s): %v", d.ID, d.Type, err)
	}
	d.JSON = js
	return d, true, nil
}
