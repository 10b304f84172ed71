package batch

import (
	"fmt"
	"testing"
)

// benchBatch encodes records of ~100-byte values with a key and one header
// until the uncompressed records section reaches size bytes.
func benchBatch(b *testing.B, size int, c Codec) []byte {
	b.Helper()
	var recs []Record
	for total := 0; total < size; {
		r := Record{
			TimestampDelta: int64(len(recs)),
			Key:            fmt.Appendf(nil, "key-%d", len(recs)),
			Value:          payload(100, uint64(len(recs))),
			Headers:        []RecordHeader{{Key: "trace", Value: []byte("0af7651916cd43dd")}},
		}
		recs = append(recs, r)
		total += 140
	}
	return mustEncode(b, testHeader(c), recs)
}

func BenchmarkValidate(b *testing.B) {
	for _, size := range []int{1 << 10, 16 << 10} {
		for _, c := range allCodecs {
			batch := benchBatch(b, size, c)
			b.Run(fmt.Sprintf("%dKiB/%v", size>>10, c), func(b *testing.B) {
				lim := DefaultLimits()
				b.SetBytes(int64(len(batch)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := Validate(batch, lim); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		batch := benchBatch(b, size, CodecNone)
		b.Run(fmt.Sprintf("%dKiB/header-only", size>>10), func(b *testing.B) {
			lim := Limits{}
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Validate(batch, lim); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecompress(b *testing.B) {
	in := payload(64<<10, 99)
	for _, c := range allCodecs[1:] {
		comp, err := Compress(c, nil, in)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.String(), func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			b.ReportMetric(float64(len(in))/float64(len(comp)), "ratio")
			for b.Loop() {
				if _, err := Decompress(c, comp, 1<<20); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	batch := benchBatch(b, 16<<10, CodecNone)
	recs, err := Records(batch, 0)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range allCodecs {
		b.Run("16KiB/"+c.String(), func(b *testing.B) {
			h := testHeader(c)
			var dst []byte
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			for b.Loop() {
				if dst, err = Encode(dst[:0], h, recs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkRecords(b *testing.B) {
	batch := benchBatch(b, 16<<10, CodecNone)
	b.Run("Records/16KiB", func(b *testing.B) {
		b.SetBytes(int64(len(batch)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Records(batch, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Batch.Records/16KiB", func(b *testing.B) {
		bt, err := Parse(batch)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(batch)))
		b.ReportAllocs()
		for b.Loop() {
			for _, err := range bt.Records(0) {
				if err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// BenchmarkWalk walks what one session read returns, 256 KiB of 16 KiB
// batches, the way the broker does: every batch, every record, with its
// offset and timestamp.
func BenchmarkWalk(b *testing.B) {
	one := benchBatch(b, 16<<10, CodecNone)
	var run []byte
	for range 16 {
		run = append(run, one...)
	}
	b.SetBytes(int64(len(run)))
	b.ReportAllocs()
	var sum int64
	for b.Loop() {
		for bt, err := range Batches(run) {
			if err != nil {
				b.Fatal(err)
			}
			for r, err := range bt.Records(0) {
				if err != nil {
					b.Fatal(err)
				}
				sum += bt.RecordOffset(r) + bt.RecordTimestamp(r) + int64(len(r.Value))
			}
		}
	}
	if sum == 0 {
		b.Fatal("nothing walked")
	}
}
