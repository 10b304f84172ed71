package batch

import "iter"

// Batch is one whole batch split off a run of batches: its parsed header
// and its bytes (Header.Size() of them, capped so that appending to them
// cannot overwrite what follows).
type Batch struct {
	Header
	Bytes []byte
}

// Parse splits the first batch off b, a run of whole batches, and parses
// its header. Errors are Next's; nothing beyond the length is checked.
func Parse(b []byte) (Batch, error) {
	one, _, err := Next(b)
	if err != nil {
		return Batch{}, err
	}
	h, err := ParseHeader(one) // cannot fail: Next checked that one holds a header
	return Batch{Header: h, Bytes: one}, err
}

// Batches iterates over the batches of b, a run of whole batches, in order.
// A batch that cannot be split off (Next's errors, an incomplete last batch
// included) is yielded as its error with the zero Batch and ends the walk.
// Nothing beyond the length is checked: validate the batches first, or
// treat errors from their Records as damage.
func Batches(b []byte) iter.Seq2[Batch, error] {
	return func(yield func(Batch, error) bool) {
		for rest := b; len(rest) > 0; {
			one, r, err := Next(rest)
			if err != nil {
				yield(Batch{}, err)
				return
			}
			rest = r
			h, _ := ParseHeader(one) // cannot fail: Next checked that one holds a header
			if !yield(Batch{Header: h, Bytes: one}, nil) {
				return
			}
		}
	}
}

// Records iterates over the records of the batch, in order, without
// building a slice of them, decompressing the records section under the cap
// maxDecompressed (≤ 0 selects the default 32 MiB). A record that cannot be
// decoded is yielded as its error with the zero Record and ends the walk;
// so does a records section that does not end with the last record.
// Checks are as for the function Records. The record's Headers slice is
// reused by the next record, its contents are not (Key, Value and header
// values alias the batch as for the function Records). Breaking out of the
// loop stops decoding at once.
func (b Batch) Records(maxDecompressed int) iter.Seq2[Record, error] {
	// The loop lives in a method of its own so that this function stays
	// small enough to inline: the range loop's body then does not escape
	// and walking a batch allocates nothing of its own.
	return func(yield func(Record, error) bool) { b.records(maxDecompressed, yield) }
}

func (b Batch) records(maxDecompressed int, yield func(Record, error) bool) {
	data, err := recordsSection(b.Header, b.Bytes, nil, normLimit(maxDecompressed))
	if err != nil {
		yield(Record{}, err)
		return
	}
	d := newRecordDecoder(b.Header, data)
	var scratch []RecordHeader
	for d.more() {
		var r Record
		if scratch, err = d.next(&r, scratch, false); err != nil {
			yield(Record{}, err)
			return
		}
		if !yield(r, nil) {
			return
		}
	}
	if err := d.finish(); err != nil {
		yield(Record{}, err)
	}
}

// RecordOffset returns the offset of r, a record of this batch.
func (h Header) RecordOffset(r Record) int64 { return h.BaseOffset + int64(r.OffsetDelta) }

// RecordTimestamp returns the timestamp of r, a record of this batch, as
// stored: BaseTimestamp plus the record's delta, in Unix milliseconds.
func (h Header) RecordTimestamp(r Record) int64 { return h.BaseTimestamp + r.TimestampDelta }
