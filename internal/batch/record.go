package batch

// Record is one decoded record. Key and Value are nil for null and non-nil
// (possibly empty) otherwise; decoded Key, Value and header values alias the
// batch (or its decompressed records section) and must not be modified.
type Record struct {
	Attributes     int8
	TimestampDelta int64 // timestamp − batch baseTimestamp
	OffsetDelta    int32 // offset − batch baseOffset; ignored by Encode
	Key            []byte
	Value          []byte
	Headers        []RecordHeader
}

// RecordHeader is one record header; the key cannot be null, Value is nil for null.
type RecordHeader struct {
	Key   string
	Value []byte
}

// Records decodes every record of one batch, decompressing the records
// section under the cap maxDecompressed (≤ 0 selects the default 32 MiB).
// It checks the record structure exactly as Validate with CheckRecords does,
// but not the CRC or other header fields: validate b first. Batch.Records
// walks the records without building a slice of them.
func Records(b []byte, maxDecompressed int) ([]Record, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return nil, err
	}
	data, err := recordsSection(h, b, nil, normLimit(maxDecompressed))
	if err != nil {
		return nil, err
	}
	out := make([]Record, 0, h.NumRecords)
	d := newRecordDecoder(h, data)
	var scratch []RecordHeader
	for d.more() {
		var r Record
		if scratch, err = d.next(&r, scratch, true); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := d.finish(); err != nil {
		return nil, err
	}
	return out, nil
}

// recordDecoder walks a records section, checking each record as it goes.
type recordDecoder struct {
	data    []byte
	off     int
	idx     int32 // index of the next record
	n       int32 // recordsCount from the header
	base    int64 // baseTimestamp
	maxTS   int64 // maxTimestamp
	checkTS bool  // record timestamps must not exceed maxTS
	discard bool  // validation only: headers are checked, not kept
}

func newRecordDecoder(h Header, data []byte) recordDecoder {
	return recordDecoder{
		data:    data,
		n:       h.NumRecords,
		base:    h.BaseTimestamp,
		maxTS:   h.MaxTimestamp,
		checkTS: !h.HasLogAppendTime() && !h.HasDeleteHorizon(),
	}
}

// more reports whether records remain according to recordsCount.
func (d *recordDecoder) more() bool { return d.idx < d.n }

// finish checks that the records consumed the whole section.
func (d *recordDecoder) finish() error {
	if d.off != len(d.data) {
		return invalid(checkRecords, "%d bytes trail the last of %d records", len(d.data)-d.off, d.n)
	}
	return nil
}

// next decodes the next record into r. Headers go into scratch, which is
// reused from the start for every record, or, with fresh, appended to it as
// a slab so earlier records keep theirs; growth is bounded by the bytes present.
func (d *recordDecoder) next(r *Record, scratch []RecordHeader, fresh bool) ([]RecordHeader, error) {
	i := d.idx
	if d.off >= len(d.data) {
		return scratch, invalid(checkRecordCount, "recordsCount %d, but the records end after %d", d.n, i)
	}
	length, off, ok := readVarint(d.data, d.off)
	if !ok {
		return scratch, invalid(checkVarint, "record %d: bad length varint", i)
	}
	if length < minRecordSize-1 || int64(length) > int64(len(d.data)-off) {
		return scratch, invalid(checkRecords, "record %d: length %d with %d bytes left", i, length, len(d.data)-off)
	}
	end := off + int(length)
	rec := d.data[:end]

	r.Attributes = int8(rec[off])
	off++
	if r.TimestampDelta, off, ok = readVarlong(rec, off); !ok {
		return scratch, invalid(checkVarint, "record %d: bad timestampDelta", i)
	}
	if r.OffsetDelta, off, ok = readVarint(rec, off); !ok {
		return scratch, invalid(checkVarint, "record %d: bad offsetDelta", i)
	}
	if r.OffsetDelta != i {
		return scratch, invalid(checkOffsetDelta, "record %d has offsetDelta %d", i, r.OffsetDelta)
	}
	if d.checkTS {
		ts, ok := addTimestamp(d.base, r.TimestampDelta)
		if !ok {
			return scratch, invalid(checkTimestamp, "record %d: baseTimestamp %d + delta %d overflows", i, d.base, r.TimestampDelta)
		}
		if ts > d.maxTS {
			return scratch, invalid(checkTimestamp, "record %d: timestamp %d exceeds maxTimestamp %d", i, ts, d.maxTS)
		}
	}
	var err error
	if r.Key, off, err = readBytes(rec, off, i, "key"); err != nil {
		return scratch, err
	}
	if r.Value, off, err = readBytes(rec, off, i, "value"); err != nil {
		return scratch, err
	}
	count, off, ok := readVarint(rec, off)
	if !ok {
		return scratch, invalid(checkVarint, "record %d: bad headers count", i)
	}
	// Each header takes at least two bytes (two length varints).
	if count < 0 || int64(count) > int64((end-off)/2) {
		return scratch, invalid(checkRecords, "record %d: headers count %d with %d bytes left", i, count, end-off)
	}
	r.Headers = nil
	var hdrs []RecordHeader
	if count > 0 && !d.discard {
		if !fresh {
			scratch = scratch[:0]
		}
		if cap(scratch)-len(scratch) < int(count) {
			// Fresh headers come from a slab shared by later records; the
			// slab never exceeds what the bytes left can hold.
			slab := int(count)
			if fresh {
				slab = max(slab, min(64, (len(d.data)-d.off)/2))
			}
			scratch = make([]RecordHeader, 0, slab)
		}
		n := len(scratch)
		hdrs = scratch[n : n+int(count) : n+int(count)]
		scratch = scratch[:n+int(count)]
		r.Headers = hdrs
	}
	for j := 0; j < int(count); j++ {
		var key, value []byte
		if key, off, err = readBytes(rec, off, i, "header key"); err != nil {
			return scratch, err
		}
		if key == nil {
			return scratch, invalid(checkRecords, "record %d: header %d has a null key", i, j)
		}
		if value, off, err = readBytes(rec, off, i, "header value"); err != nil {
			return scratch, err
		}
		if hdrs != nil {
			// Reused headers still hold the previous record's: records of
			// one batch mostly carry the same keys, kept without a copy.
			k := hdrs[j].Key
			if k != string(key) {
				k = string(key)
			}
			hdrs[j] = RecordHeader{Key: k, Value: value}
		}
	}
	if off != end {
		return scratch, invalid(checkRecords, "record %d: %d bytes left inside its length", i, end-off)
	}
	d.off = end
	d.idx++
	return scratch, nil
}

// readBytes reads a varint length (−1 = null) and that many bytes of b from off.
func readBytes(b []byte, off int, rec int32, what string) ([]byte, int, error) {
	n, off, ok := readVarint(b, off)
	if !ok {
		return nil, off, invalid(checkVarint, "record %d: bad %s length", rec, what)
	}
	if n == -1 {
		return nil, off, nil
	}
	if n < -1 || int64(n) > int64(len(b)-off) {
		return nil, off, invalid(checkRecords, "record %d: %s length %d with %d bytes left", rec, what, n, len(b)-off)
	}
	end := off + int(n)
	return b[off:end:end], end, nil
}

// readVarint decodes a zigzag varint of at most 5 bytes whose value fits 32
// bits, starting at b[off]; ok is false when it is truncated or too long.
func readVarint(b []byte, off int) (v int32, next int, ok bool) {
	var x uint32
	for i := 0; i < 5; i++ {
		if off+i >= len(b) {
			return 0, off, false
		}
		c := b[off+i]
		if i == 4 && c > 0x0f {
			return 0, off, false
		}
		x |= uint32(c&0x7f) << (7 * i)
		if c < 0x80 {
			return int32(x>>1) ^ -int32(x&1), off + i + 1, true
		}
	}
	return 0, off, false // unreachable: the fifth byte either ends or fails above
}

// readVarlong decodes a zigzag varlong of at most 10 bytes, starting at b[off];
// ok is false when it is truncated or too long.
func readVarlong(b []byte, off int) (v int64, next int, ok bool) {
	var x uint64
	for i := 0; i < 10; i++ {
		if off+i >= len(b) {
			return 0, off, false
		}
		c := b[off+i]
		if i == 9 && c > 0x01 {
			return 0, off, false
		}
		x |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return int64(x>>1) ^ -int64(x&1), off + i + 1, true
		}
	}
	return 0, off, false
}

// addTimestamp returns base+delta and whether it did not overflow.
func addTimestamp(base, delta int64) (int64, bool) {
	ts := base + delta
	if (delta > 0 && ts < base) || (delta < 0 && ts > base) {
		return 0, false
	}
	return ts, true
}
