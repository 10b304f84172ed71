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
