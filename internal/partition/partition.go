// Package partition chooses partitions for keyed messages exactly as
// Kafka's default partitioner does (murmur2 of the key, made positive,
// modulo the partition count), so that native and Kafka producers put a key
// in the same partition.
package partition

import "encoding/binary"

// Murmur2 is the 32-bit murmur2 hash with Kafka's seed, as computed by the
// Java client's Utils.murmur2 (returned as a signed int32 like Java's int).
func Murmur2(data []byte) int32 {
	const (
		seed = 0x9747b28c
		m    = 0x5bd1e995
		r    = 24
	)
	n := len(data)
	h := uint32(seed) ^ uint32(n)
	for len(data) >= 4 {
		k := binary.LittleEndian.Uint32(data)
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
		data = data[4:]
	}
	switch len(data) {
	case 3:
		h ^= uint32(data[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// ForKey returns the partition of a non-empty key among n partitions (n > 0).
func ForKey(key []byte, n int32) int32 {
	return (Murmur2(key) & 0x7fffffff) % n
}
