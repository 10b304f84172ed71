package batch

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

// The streaming check of compressed batches must report exactly what
// decompressing the whole section first and decoding after reports: the
// same check, the same detail, for valid batches and for every kind of
// damage, in every codec.
func TestStreamingValidationMatchesWhole(t *testing.T) {
	big := make([]byte, 200<<10) // a record larger than the stream's window
	for i := range big {
		big[i] = byte(i * 7)
	}
	okN := func(n int) []rawRecord {
		out := make([]rawRecord, n)
		for i := range out {
			out[i] = okRecord(i)
		}
		return out
	}
	type variant struct {
		name  string
		n     int // recordsCount in the header
		recs  []rawRecord
		extra []byte // appended to the decompressed section
		cut   int    // bytes cut off the compressed section's end
		limit int
	}
	bigRec := okRecord(1)
	bigRec.valueLen, bigRec.value = int64(len(big)), big
	many := okN(3000)
	badMiddle := okN(2000)
	badMiddle[1500].offsetDelta = 7
	variants := []variant{
		{name: "ok", n: 2, recs: okN(2)},
		{name: "ok, many across windows", n: 3000, recs: many},
		{name: "ok, a record larger than the window", n: 3, recs: []rawRecord{okRecord(0), bigRec, okRecord(2)}},
		{name: "bad offset delta in the middle", n: 2000, recs: badMiddle},
		{name: "count above the records", n: 5, recs: okN(3)},
		{name: "count far above the records", n: 3000, recs: okN(3)},
		{name: "count below the records", n: 2, recs: okN(3)},
		{name: "trailing bytes", n: 2, recs: okN(2), extra: []byte{1, 2, 3}},
		{name: "many trailing bytes", n: 2, recs: okN(2), extra: make([]byte, 300<<10)},
		{name: "zeros", n: 2, extra: make([]byte, 1000)},
		{name: "record length beyond the section", n: 1, recs: []rawRecord{okRecord(0).adj(50)}},
		{name: "record length short", n: 1, recs: []rawRecord{okRecord(0).adj(-2)}},
		{name: "truncated stream", n: 3000, recs: many, cut: 7},
		{name: "over the cap", n: 3000, recs: many, limit: 20 << 10},
		{name: "bad record over the cap", n: 2000, recs: badMiddle, limit: 20 << 10},
	}
	for _, c := range []Codec{CodecGzip, CodecSnappy, CodecLZ4, CodecZstd} {
		for _, v := range variants {
			sec := append(section(v.recs...), v.extra...)
			comp, err := Compress(c, nil, sec)
			if err != nil {
				t.Fatal(err)
			}
			comp = comp[:len(comp)-v.cut]
			h := rawHeader(v.n)
			h.Attributes = int16(c)
			b := assemble(h, comp)
			hp, err := ParseHeader(b)
			if err != nil {
				t.Fatal(err)
			}
			limit := v.limit
			if limit == 0 {
				limit = defaultMaxDecompressedBytes
			}
			stream := checkRecordsStream(hp, b, limit)
			whole := checkRecordsWhole(hp, b, limit)
			if describe(stream) != describe(whole) {
				t.Errorf("%v, %s:\n stream %s\n whole  %s", c, v.name, describe(stream), describe(whole))
			}
		}
	}
	// xerial-framed snappy, as Java producers write it.
	sec := section(okN(3000)...)
	var x []byte
	x = append(x, xerialMagic...)
	x = append(x, 0, 0, 0, 1, 0, 0, 0, 1)
	for off := 0; off < len(sec); off += 32 << 10 {
		chunk, _ := Compress(CodecSnappy, nil, sec[off:min(off+32<<10, len(sec))])
		x = append(x, byte(len(chunk)>>24), byte(len(chunk)>>16), byte(len(chunk)>>8), byte(len(chunk)))
		x = append(x, chunk...)
	}
	h := rawHeader(3000)
	h.Attributes = int16(CodecSnappy)
	b := assemble(h, x)
	hp, _ := ParseHeader(b)
	if err := checkRecordsStream(hp, b, defaultMaxDecompressedBytes); err != nil {
		t.Fatalf("xerial: %v", err)
	}
	hp.NumRecords = 2999
	if s, w := describe(checkRecordsStream(hp, b, 1<<20)), describe(checkRecordsWhole(hp, b, 1<<20)); s != w {
		t.Errorf("xerial, count below:\n stream %s\n whole  %s", s, w)
	}
}

func describe(err error) string {
	if err == nil {
		return "ok"
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		return "not a ValidationError: " + err.Error()
	}
	return fmt.Sprintf("%s: %s (too large %v, corrupt %v)", ve.Check, ve.Detail, errors.Is(err, ErrDecompressedTooLarge), errors.Is(err, ErrCorruptCompressed))
}

// A bomb under the server's real cap (32 MiB) costs the stream's window,
// not the cap: it fails at its first record, and decompressing the rest
// only to report it uses the same window.
func TestBombUnderDefaultCapAllocatesLittle(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 1 GiB bombs")
	}
	for c, list := range bombs() {
		for _, bomb := range list {
			h := rawHeader(1)
			h.Attributes = int16(c)
			b := assemble(h, bomb)
			lim := Limits{MaxBatchBytes: len(b), CheckRecords: true} // default cap
			runtime.GC()
			_, _ = Validate(b, lim) // warm the pools
			var err error
			alloc := measureAlloc(func() { _, err = Validate(b, lim) })
			if err == nil {
				t.Fatalf("%v: a bomb validated", c)
			}
			budget := warmBudget()
			if c == CodecSnappy {
				// Snappy declares its size and is decoded by blocks: a raw
				// block up to the cap is decoded whole (a real batch may be
				// that large); this one declares 1 GiB and is refused unread.
				budget += 1 << 20
			}
			if alloc > budget {
				t.Errorf("%v: validating a bomb allocated %d bytes (budget %d): %v", c, alloc, budget, err)
			}
		}
	}
}

// Random damage to the decompressed records: the two checks agree.
func TestStreamingValidationMatchesWholeRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		n := 1 + rng.IntN(400)
		recs := make([]rawRecord, n)
		for j := range recs {
			recs[j] = okRecord(j)
			recs[j].value = payload(rng.IntN(300), uint64(i*1000+j))
			recs[j].valueLen = int64(len(recs[j].value))
		}
		sec := section(recs...)
		for k := rng.IntN(4); k > 0; k-- { // damage a few bytes
			sec[rng.IntN(len(sec))] = byte(rng.IntN(256))
		}
		if rng.IntN(4) == 0 {
			sec = sec[:rng.IntN(len(sec))]
		}
		c := []Codec{CodecGzip, CodecSnappy, CodecLZ4, CodecZstd}[i%4]
		comp, err := Compress(c, nil, sec)
		if err != nil {
			t.Fatal(err)
		}
		h := rawHeader(n)
		h.Attributes = int16(c)
		b := assemble(h, comp)
		hp, _ := ParseHeader(b)
		limit := []int{defaultMaxDecompressedBytes, 1 << 10, 64 << 10}[rng.IntN(3)]
		if s, w := describe(checkRecordsStream(hp, b, limit)), describe(checkRecordsWhole(hp, b, limit)); s != w {
			t.Fatalf("case %d (%v, %d records, limit %d):\n stream %s\n whole  %s", i, c, n, limit, s, w)
		}
	}
}
