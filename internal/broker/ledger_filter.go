package broker

import "encoding/binary"

// ledgerFilter tells, without reading the state store, that most keys
// which are not in a processed-key ledger are not: Bloom filters of the
// keys recorded, grouped by expiry period so that whole groups are dropped
// once their keys expired. A Bloom filter has no false negatives however
// full it is, so the filter is always safe to trust when it says no; when
// it says maybe, the store decides. Memory is bounded (maxBytes): past the
// bound, keys go into the filters that exist, which then answer maybe
// more often (the cost is store reads, never a missed key).
//
// Each period's filter is a chain of Bloom filters of doubling size (a
// scalable Bloom filter): keys go into the newest, lookups ask each. A
// filter of m bits takes m/16 keys (16 bits and 7 probes per key: about
// 0.1 % false positives each, blocked, so that a chain of ten stays near
// 1 %)
// before the next is added. Within the bound, 2 bytes per key: 32 MiB
// hold about 16 million keys.
//
// Not safe for concurrent use: guarded by subscription.mu.
type ledgerFilter struct {
	period   int64 // ms of expiry each group covers
	groups   map[int64]*filterGroup
	bytes    int
	maxBytes int
}

type filterGroup struct{ blooms []*bloomFilter }

// bloomFilter is a blocked Bloom filter: a key's probes all fall in one
// 64-byte block (one cache line), chosen by the first half of its hash;
// the second half gives the 7 probes, 9 bits each.
type bloomFilter struct {
	words    []uint64
	mask     uint64 // blocks − 1
	n, limit int
}

const (
	bloomProbes       = 7
	bloomBitsPerKey   = 16
	bloomMinBits      = 1 << 16 // 8 KiB
	bloomMaxBits      = 1 << 27 // 16 MiB
	ledgerFilterBytes = 32 << 20
	ledgerFilterSlots = 8 // groups per TTL
)

func newLedgerFilter(ttlMs int64, maxBytes int) *ledgerFilter {
	return &ledgerFilter{period: max(ttlMs/ledgerFilterSlots, 1000), groups: map[int64]*filterGroup{}, maxBytes: maxBytes}
}

func newBloom(nbits int) *bloomFilter {
	return &bloomFilter{words: make([]uint64, nbits/64), mask: uint64(nbits/512 - 1), limit: nbits / bloomBitsPerKey}
}

// block returns the words of h's block and its probe bits.
func (b *bloomFilter) block(h ledgerHash) ([]uint64, uint64) {
	i := (binary.LittleEndian.Uint64(h[:8]) & b.mask) * 8
	return b.words[i : i+8 : i+8], binary.LittleEndian.Uint64(h[8:])
}

func (b *bloomFilter) add(h ledgerHash) {
	w, y := b.block(h)
	for range bloomProbes {
		bit := y & 511
		w[bit/64] |= 1 << (bit % 64)
		y >>= 9
	}
	b.n++
}

func (b *bloomFilter) has(h ledgerHash) bool {
	w, y := b.block(h)
	for range bloomProbes {
		bit := y & 511
		if w[bit/64]&(1<<(bit%64)) == 0 {
			return false
		}
		y >>= 9
	}
	return true
}

// add records a key expiring at expMs.
func (f *ledgerFilter) add(h ledgerHash, expMs int64) {
	slot := expMs / f.period
	g := f.groups[slot]
	if g == nil {
		g = &filterGroup{}
		f.groups[slot] = g
	}
	var last *bloomFilter
	if len(g.blooms) > 0 {
		last = g.blooms[len(g.blooms)-1]
	}
	if last == nil || last.n >= last.limit {
		nbits := bloomMinBits
		if last != nil {
			nbits = min(len(last.words)*64*2, bloomMaxBits)
		}
		if last == nil || f.bytes+nbits/8 <= f.maxBytes {
			// The first filter of a group is always made (8 KiB): a group
			// without one could not take keys.
			last = newBloom(nbits)
			g.blooms = append(g.blooms, last)
			f.bytes += nbits / 8
		}
	}
	last.add(h)
}

// mayHave reports whether a key may be in the ledger with an expiry after
// nowMs (false: certainly not).
func (f *ledgerFilter) mayHave(h ledgerHash, nowMs int64) bool {
	for slot, g := range f.groups {
		if (slot+1)*f.period <= nowMs {
			continue // every key of the group expired (dropped by expire)
		}
		for _, b := range g.blooms {
			if b.has(h) {
				return true
			}
		}
	}
	return false
}

// expire drops the groups whose keys all expired by nowMs.
func (f *ledgerFilter) expire(nowMs int64) {
	for slot, g := range f.groups {
		if (slot+1)*f.period <= nowMs {
			for _, b := range g.blooms {
				f.bytes -= len(b.words) * 8
			}
			delete(f.groups, slot)
		}
	}
}

// size returns the filter's bytes (for tests and describe).
func (f *ledgerFilter) size() int { return f.bytes }
