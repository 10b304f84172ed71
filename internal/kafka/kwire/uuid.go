package kwire

import (
	"encoding/hex"
	"strings"
)

// UUIDBytes parses a topic's UUID string into Kafka's 16-byte topic id.
func UUIDBytes(s string) [16]byte {
	var out [16]byte
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err == nil && len(b) == 16 {
		copy(out[:], b)
	}
	return out
}

// UUIDString formats a 16-byte topic id as the topic's UUID string.
func UUIDString(b [16]byte) string {
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
