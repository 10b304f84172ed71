package broker

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"
)

func testHash(i int) ledgerHash {
	sum := sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(i)))
	var h ledgerHash
	copy(h[:], sum[:])
	return h
}

// TestLedgerFilter: no key added is ever missed, however full the filter
// (past its memory bound too); few keys not added are maybes; groups go
// when their keys expired, with their memory.
func TestLedgerFilter(t *testing.T) {
	const ttl = 80_000 // ms: groups of 10 s
	f := newLedgerFilter(ttl, 64<<10)
	const n = 200_000 // far more than 64 KiB holds at 10 bits a key
	for i := range n {
		f.add(testHash(i), 1_000_000+int64(i%40)*1000)
	}
	if f.size() > 64<<10+bloomMinBits/8*len(f.groups) {
		t.Fatalf("filter of %d bytes, bound 64 KiB", f.size())
	}
	for i := range n {
		if !f.mayHave(testHash(i), 1_000_000) {
			t.Fatalf("key %d added and missed", i)
		}
	}
	// A filter within its bound: about 1 % false positives.
	g := newLedgerFilter(ttl, ledgerFilterBytes)
	for i := range n {
		g.add(testHash(i), 1_000_000)
	}
	maybes := 0
	for i := n; i < 2*n; i++ {
		if g.mayHave(testHash(i), 1_000_000) {
			maybes++
		}
	}
	if maybes > n/50 {
		t.Errorf("%d maybes for %d keys never added", maybes, n)
	}
	// Expiry: at 1,020,000 the groups of expiries below it are gone.
	before := f.size()
	f.expire(1_020_000)
	if f.size() >= before {
		t.Errorf("expire kept %d of %d bytes", f.size(), before)
	}
	for i := range n {
		if exp := 1_000_000 + int64(i%40)*1000; exp >= 1_020_000 && !f.mayHave(testHash(i), 1_020_000) {
			t.Fatalf("key %d (expiry %d) missed after expiring others", i, exp)
		}
	}
	f.expire(2_000_000)
	if f.size() != 0 || len(f.groups) != 0 {
		t.Errorf("everything expired, %d bytes in %d groups left", f.size(), len(f.groups))
	}
}

func BenchmarkLedgerFilterMiss(b *testing.B) {
	f := newLedgerFilter(86_400_000, ledgerFilterBytes)
	for i := range 1_000_000 {
		f.add(testHash(i), int64(i))
	}
	hs := make([]ledgerHash, 1024)
	for i := range hs {
		hs[i] = testHash(2_000_000 + i)
	}
	b.ResetTimer()
	for i := range b.N {
		f.mayHave(hs[i%len(hs)], 0)
	}
}
