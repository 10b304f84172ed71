package broker

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spoolmq/spool/internal/state"
)

// Halt records (h/, docs/format/state.md): this file is their only encoder
// and decoder; Halt is the in-memory form. Version 1 is the byte 0x01, then
// a JSON object of haltV1, every field present, the time RFC 3339 in UTC
// with up to nine fractional digits; its decoder refuses unknown fields and
// trailing bytes. Version 0 (JSON of Halt with the tags of the time, first
// byte '{') was written by development builds before versions existed and
// is still read.

const haltRecordVersion = 1

type haltV1 struct {
	Offset   int64     `json:"offset"`
	Error    string    `json:"error"`
	Attempts int       `json:"attempts"`
	Time     time.Time `json:"time"`
	Member   string    `json:"member"`
}

type haltV0 struct {
	Offset   int64     `json:"offset"`
	Error    string    `json:"error,omitempty"`
	Attempts int       `json:"attempts"`
	Time     time.Time `json:"time"`
	Member   string    `json:"member,omitempty"`
}

// encodeHalt encodes a halt record.
func encodeHalt(h Halt) ([]byte, error) {
	b, err := json.Marshal(haltV1{Offset: h.Offset, Error: h.Error, Attempts: h.Attempts, Time: h.Time.UTC(), Member: h.Member})
	if err != nil {
		return nil, err
	}
	return append([]byte{haltRecordVersion}, b...), nil
}

// decodeHalt decodes the halt record stored under key.
func decodeHalt(key, v []byte) (Halt, error) {
	h, err := decodeHaltRecord(v)
	if err != nil {
		return Halt{}, &state.RecordError{Kind: "halt", Key: key, Err: err}
	}
	return h, nil
}

func decodeHaltRecord(v []byte) (Halt, error) {
	h, err := decodeHaltVersions(v)
	if err == nil {
		err = state.CheckTime("time", h.Time)
	}
	if err != nil {
		return Halt{}, err
	}
	return h, nil
}

func decodeHaltVersions(v []byte) (Halt, error) {
	ver, payload, err := state.Version(v, haltRecordVersion, true)
	if err != nil {
		return Halt{}, err
	}
	if ver == 0 {
		var w haltV0
		if err := state.DecodeJSON(payload, &w, false); err != nil {
			return Halt{}, fmt.Errorf("version-0 record: %w", err)
		}
		return Halt(w), nil
	}
	var w haltV1
	if err := state.DecodeJSON(payload, &w, true); err != nil {
		return Halt{}, err
	}
	// A conversion: a field added to Halt stops this compiling until the
	// record learns it (in a new version).
	return Halt(w), nil
}
