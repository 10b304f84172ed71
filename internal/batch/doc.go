// Package batch decodes, validates and encodes Kafka record batches
// (magic 2, the "RecordBatch v2" format) as Spool stores and serves them, and
// implements the batch compression codecs with a hard cap on decompressed
// size.
//
// # Batch layout
//
// A batch is a 61-byte header followed by the records section. All integers
// are big-endian. The byte offsets below are part of the wire format, do not
// change them.
//
//	offset  size  field
//	     0     8  baseOffset            int64   first offset of the batch
//	     8     4  batchLength           int32   total size − 12
//	    12     4  partitionLeaderEpoch  int32
//	    16     1  magic                 int8    always 2
//	    17     4  crc                   uint32  CRC-32C (Castagnoli) of bytes [21:end)
//	    21     2  attributes            int16   see below
//	    23     4  lastOffsetDelta       int32   recordsCount − 1
//	    27     8  baseTimestamp         int64
//	    35     8  maxTimestamp          int64
//	    43     8  producerId            int64   −1 when not idempotent
//	    51     2  producerEpoch         int16
//	    53     4  baseSequence          int32
//	    57     4  recordsCount          int32
//	    61     …  records               compressed as one block if codec ≠ none
//
// The CRC starts at the attributes field, so baseOffset, batchLength,
// partitionLeaderEpoch and magic are outside it: the broker rewrites
// baseOffset and partitionLeaderEpoch on append (SetBaseOffset,
// SetPartitionLeaderEpoch) without recomputing the CRC.
//
// Attribute bits (part of the wire format, do not change):
//
//	bits 0–2  compression codec: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd
//	bit  3    timestamp type: 1 = LogAppendTime, 0 = CreateTime
//	bit  4    transactional
//	bit  5    control batch (transaction markers)
//	bit  6    delete horizon set (baseTimestamp holds it; written by compaction)
//
// # Record layout
//
// The records section holds recordsCount records back to back. Varints are
// zigzag-encoded base-128 integers (at most 5 bytes for a varint, 10 for a
// varlong); a length of −1 means null.
//
//	length          varint   size of the rest of the record
//	attributes      int8     unused, carried as is
//	timestampDelta  varlong  timestamp − baseTimestamp
//	offsetDelta     varint   offset − baseOffset, 0..recordsCount−1 in order
//	keyLength       varint   −1 = null key
//	key             bytes
//	valueLength     varint   −1 = null value
//	value           bytes
//	headersCount    varint
//	headers         headersCount × { keyLength varint (≥ 0), key string,
//	                                 valueLength varint (−1 = null), value }
//
// # Codecs
//
// gzip is RFC 1952 (concatenated members accepted). snappy is accepted both
// as a raw snappy block and in the xerial framing (magic "\x82SNAPPY\x00",
// two int32 version words, then big-endian int32 chunk lengths each followed
// by a raw snappy block); Compress writes raw blocks. lz4 is the LZ4 frame
// format. zstd is the Zstandard frame format; frames whose window exceeds
// 8 MiB are refused so that a tiny input cannot force a large decoder
// allocation.
//
// Every decompression path is capped: output past the caller's limit fails
// with ErrDecompressedTooLarge without ever allocating more than limit+1
// bytes of output, whatever sizes the input declares.
//
// # Errors
//
// Validation failures are *ValidationError values whose Check field names the
// failed check; they match ErrInvalidBatch with errors.Is. Decompression
// failures are *DecompressError values matching either
// ErrDecompressedTooLarge or ErrCorruptCompressed. Next reports a short
// buffer with *IncompleteError, which matches ErrIncomplete and
// io.ErrUnexpectedEOF. No input makes any function of this package panic.
package batch
