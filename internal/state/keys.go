package state

import "encoding/binary"

// TopicKey is the key of a topic record.
func TopicKey(topic string) []byte { return append([]byte("t/"), topic...) }

// TopicPrefix is the prefix of every topic record.
func TopicPrefix() []byte { return []byte("t/") }

// SubKey is the key of a subscription record.
func SubKey(topic, sub string) []byte {
	k := append([]byte("s/"), topic...)
	k = append(k, 0)
	return append(k, sub...)
}

// SubPrefix is the prefix of every subscription record of a topic; with an
// empty topic, of every subscription record.
func SubPrefix(topic string) []byte {
	if topic == "" {
		return []byte("s/")
	}
	return append(append([]byte("s/"), topic...), 0)
}

// OffsetKey is the key of a subscription's committed offset for a partition.
func OffsetKey(topic, sub string, partition int32) []byte {
	k := OffsetPrefix(topic, sub)
	return binary.BigEndian.AppendUint32(k, uint32(partition))
}

// OffsetPrefix is the prefix of a subscription's committed offsets; with an
// empty sub, of all committed offsets of a topic.
func OffsetPrefix(topic, sub string) []byte {
	k := append([]byte("o/"), topic...)
	k = append(k, 0)
	if sub == "" {
		return k
	}
	k = append(k, sub...)
	return append(k, 0)
}

// PartitionOfOffsetKey returns the partition encoded at the end of an
// offset key.
func PartitionOfOffsetKey(k []byte) int32 {
	if len(k) < 4 {
		return -1
	}
	return int32(binary.BigEndian.Uint32(k[len(k)-4:]))
}

// QueueKey is the key of a queue subscription partition's snapshot.
func QueueKey(topic, sub string, partition int32) []byte {
	k := append([]byte("q/"), topic...)
	k = append(k, 0)
	k = append(k, sub...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint32(k, uint32(partition))
}

// QueuePrefix is the prefix of a queue subscription's snapshots; with an
// empty sub, of all of a topic's.
func QueuePrefix(topic, sub string) []byte { return subPrefix("q/", topic, sub) }

// ParkKey is the key of a parked message in the schedule store, ordered by
// due time.
func ParkKey(topic, sub string, dueMs int64, partition int32, offset int64) []byte {
	k := ParkPrefix(topic, sub)
	k = binary.BigEndian.AppendUint64(k, uint64(dueMs))
	k = binary.BigEndian.AppendUint32(k, uint32(partition))
	return binary.BigEndian.AppendUint64(k, uint64(offset))
}

// ParkPrefix is the prefix of a subscription's parked messages.
func ParkPrefix(topic, sub string) []byte { return subPrefix("w/", topic, sub) }

// ParkIndexKey maps a parked message's position to its due time, so the
// schedule entry can be found when the message finishes.
func ParkIndexKey(topic, sub string, partition int32, offset int64) []byte {
	k := ParkIndexPrefix(topic, sub)
	k = binary.BigEndian.AppendUint32(k, uint32(partition))
	return binary.BigEndian.AppendUint64(k, uint64(offset))
}

// ParkIndexPrefix is the prefix of a subscription's park index.
func ParkIndexPrefix(topic, sub string) []byte { return subPrefix("x/", topic, sub) }

// RedrivenKey records that a dead-letter topic's message was redriven.
func RedrivenKey(dlqTopic string, offset int64) []byte {
	k := append([]byte("r/"), dlqTopic...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, uint64(offset))
}

// RedrivenPrefix is the prefix of a dead-letter topic's redriven marks.
func RedrivenPrefix(dlqTopic string) []byte {
	return append(append([]byte("r/"), dlqTopic...), 0)
}

func subPrefix(kind, topic, sub string) []byte {
	k := append([]byte(kind), topic...)
	k = append(k, 0)
	if sub == "" {
		return k
	}
	k = append(k, sub...)
	return append(k, 0)
}

// Space is a protocol front end's part of the key space: records it
// defines and the broker stores without reading them (docs/format/state.md).
// Its own records are keyed Prefix ‖ key; the records it keeps with a
// subscription (deleted with the subscription and with its topic) are
// keyed SubKind ‖ topic ‖ 00 ‖ subscription ‖ 00 ‖ key.
type Space struct {
	Name    string // the front end
	Prefix  string // its own records
	SubKind string // its subscription records
	// Replicated: the space's own records are written only by applying
	// its changes (broker.Space.Decide), which a cluster orders through its
	// metadata group; they are part of the catalog's snapshots.
	Replicated bool
}

// Spaces are the front ends' spaces. A prefix or kind, once given out, is
// never given to another front end.
var Spaces = []Space{
	// The Kafka front end: producer ids, producer-state snapshots and
	// group configs; commit metadata per partition of the stream
	// subscription that is a consumer group's.
	{Name: "kafka", Prefix: "kafka-", SubKind: "k/"},
	// The schema registry: schemas, subjects' versions, compatibility
	// and mode settings (internal/schema/sreg).
	{Name: "schema", Prefix: "schema-", SubKind: "y/", Replicated: true},
	// The user store: users' SCRAM credentials and hashed API keys
	// (internal/auth/users).
	{Name: "auth", Prefix: "auth-", SubKind: "z/", Replicated: true},
	// Access control rules (internal/auth/acl).
	{Name: "acl", Prefix: "acl-", SubKind: "v/", Replicated: true},
	// Client quotas: producer and consumer byte rates and request rates
	// per user and by default (internal/quota).
	{Name: "quota", Prefix: "quota-", SubKind: "j/", Replicated: true},
}

// SpaceSubPrefix is the prefix of a space's records kept with a
// subscription; with an empty sub, of all of a topic's.
func SpaceSubPrefix(sp Space, topic, sub string) []byte { return subPrefix(sp.SubKind, topic, sub) }

// SpaceSubPrefixes are the prefixes of every space's records kept with a
// subscription (with an empty sub, with any subscription of the topic).
func SpaceSubPrefixes(topic, sub string) [][]byte {
	out := make([][]byte, 0, len(Spaces))
	for _, sp := range Spaces {
		out = append(out, SpaceSubPrefix(sp, topic, sub))
	}
	return out
}

// HaltKey records that a stream subscription's partition is halted at a
// message its consumer gave up on (failure action "stop").
func HaltKey(topic, sub string, partition int32) []byte {
	return binary.BigEndian.AppendUint32(HaltPrefix(topic, sub), uint32(partition))
}

// HaltPrefix is the prefix of a subscription's halts; with an empty sub, of
// all of a topic's.
func HaltPrefix(topic, sub string) []byte { return subPrefix("h/", topic, sub) }

// RaftKey is a key of raft group g's log and state (internal/raftlog):
// g/ ‖ group (uint64) ‖ suffix.
func RaftKey(g uint64, suffix ...byte) []byte {
	k := binary.BigEndian.AppendUint64([]byte("g/"), g)
	return append(k, suffix...)
}

// LedgerKey is a processed key of a queue subscription's idempotent-consumer
// ledger: l/ ‖ topic ‖ 00 ‖ sub ‖ 00 ‖ key hash (16 bytes).
func LedgerKey(topic, sub string, hash [16]byte) []byte {
	return append(LedgerPrefix(topic, sub), hash[:]...)
}

// LedgerPrefix is the prefix of a subscription's processed keys; with an
// empty sub, of all of a topic's.
func LedgerPrefix(topic, sub string) []byte { return subPrefix("l/", topic, sub) }

// LedgerExpiryKey is a record of a ledger's expiry index, holding keys
// that expire at the latest at expiryMs: e/ ‖ topic ‖ 00 ‖ sub ‖ 00 ‖
// expiry ms (8 bytes) ‖ the hash of its first key (16 bytes).
func LedgerExpiryKey(topic, sub string, expiryMs int64, hash [16]byte) []byte {
	k := binary.BigEndian.AppendUint64(LedgerExpiryPrefix(topic, sub), uint64(expiryMs))
	return append(k, hash[:]...)
}

// LedgerExpiryPrefix is the prefix of a subscription's ledger expiry
// index; with an empty sub, of all of a topic's.
func LedgerExpiryPrefix(topic, sub string) []byte { return subPrefix("e/", topic, sub) }
