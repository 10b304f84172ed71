package kafka_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/serverhook"
)

// The bad-input set (DESIGN.md, "Fuzzing and the bad-input set"): inputs
// that broke real brokers, each sent over a real socket as fixed bytes built
// before the measurement, so that what the process allocates meanwhile is
// the server's. Each must be refused (an error code or a closed
// connection) having cost under 4 MiB beyond the frame it read.

const badInputBudget = 4 << 20

// reqFrame prefixes a request header (flexible if the version is) and body
// with the length.
func reqFrame(req kmsg.Request) []byte {
	b := []byte{0, 0, 0, 0}
	b = binary.BigEndian.AppendUint16(b, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, 7)
	b = binary.BigEndian.AppendUint16(b, 1)
	b = append(b, 'c')
	if req.IsFlexible() {
		b = append(b, 0)
	}
	b = req.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// roundTrip sends f and decodes the answer into resp; ok is false when the
// server closed the connection instead.
func (r *rawConn) roundTrip(f []byte, resp kmsg.Response) (ok bool) {
	r.send(f)
	var sz [4]byte
	if _, err := io.ReadFull(r.nc, sz[:]); err != nil {
		return false
	}
	body := make([]byte, binary.BigEndian.Uint32(sz[:]))
	if _, err := io.ReadFull(r.nc, body); err != nil {
		r.t.Fatal(err)
	}
	body = body[4:] // correlation id
	if resp.IsFlexible() && resp.Key() != 18 {
		body = body[1:] // no tagged fields in our response headers
	}
	if err := resp.ReadFrom(body); err != nil {
		r.t.Fatal(err)
	}
	return true
}

func produceFrame(topic string, records []byte) []byte {
	req := kmsg.NewPtrProduceRequest()
	req.Version = 9
	req.Acks = -1
	req.TimeoutMillis = 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = records
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return reqFrame(req)
}

// withCodec rewrites a one-record batch's records section as data,
// declared compressed with c and holding n records.
func withCodec(t *testing.T, c batch.Codec, n int, data []byte) []byte {
	b := encodeBatch(t, batch.Header{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, 1)
	hdr := append([]byte(nil), b[:batch.HeaderSize]...)
	binary.BigEndian.PutUint16(hdr[21:], uint16(c))
	binary.BigEndian.PutUint32(hdr[57:], uint32(n))
	binary.BigEndian.PutUint32(hdr[23:], uint32(n-1))
	out := append(hdr, data...)
	binary.BigEndian.PutUint32(out[8:], uint32(len(out)-12))
	binary.BigEndian.PutUint32(out[17:], batch.CRC(out))
	return out
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// bomb compresses 16 MiB of zeros once and repeats the frame (gzip members,
// lz4 and zstd frames may follow one another) up to 1 GiB, so the test
// never holds the gigabyte.
func bomb(newW func(io.Writer) io.WriteCloser) []byte {
	var one bytes.Buffer
	w := newW(&one)
	if _, err := io.CopyBuffer(w, io.LimitReader(zeros{}, 16<<20), make([]byte, 1<<20)); err != nil {
		panic(err)
	}
	w.Close()
	return bytes.Repeat(one.Bytes(), 64)
}

func TestBadInputRegression(t *testing.T) {
	srv := startServer(t)
	br := serverhook.Broker(srv)
	// Room for the 4 MiB lz4 bomb (lz4 expands at most 255 times).
	if _, err := br.CreateTopic("t", catalog.TopicConfig{MaxMessageBytes: 8 << 20}); err != nil {
		t.Fatal(err)
	}
	if _, err := br.CreateTopic("small", catalog.TopicConfig{MaxMessageBytes: 1024}); err != nil {
		t.Fatal(err)
	}
	addr := srv.KafkaAddr()

	// closes: the server must close the connection, having allocated under
	// the budget.
	closes := func(name string, f []byte) {
		t.Run(name, func(t *testing.T) {
			var closed bool
			grew := heapGrowth(func() {
				c := dialRaw(t, addr)
				c.send(f)
				closed = c.closed()
			})
			if !closed {
				t.Fatal("connection not closed")
			}
			if grew > badInputBudget+uint64(min(len(f), 16<<20)) {
				t.Fatalf("heap grew by %d bytes for a %d-byte frame", grew, len(f))
			}
		})
	}
	// A Produce v9 (flexible) with 2^30 topics in a 30-byte frame.
	// Header (key, version, correlation, client id, no tags), then a null
	// transactional id, acks -1, timeout 5 s and the topic count (+1).
	pr := []byte{0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 1, 0, 1, 'c', 0, 0, 0xff, 0xff, 0, 0, 0x13, 0x88}
	pr = binary.AppendUvarint(pr, 1<<30+1)
	binary.BigEndian.PutUint32(pr, uint32(len(pr)-4))
	closes("produce topic count 2^30", pr)
	// Produce v8 (not flexible): 2^30 topics.
	pr8 := []byte{0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 1, 0, 1, 'c', 0xff, 0xff, 0xff, 0xff, 0, 0, 0x13, 0x88, 0x40, 0, 0, 0}
	binary.BigEndian.PutUint32(pr8, uint32(len(pr8)-4))
	closes("produce v8 topic count 2^30", pr8)
	// Metadata v4 with 2^31-1 topics.
	md := []byte{0, 0, 0, 0, 0, 3, 0, 4, 0, 0, 0, 7, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 1}
	binary.BigEndian.PutUint32(md, uint32(len(md)-4))
	closes("metadata topic count 2^31-1", md)
	// A frame declaring more than 16 MiB (Produce) or 1 MiB (others),
	// whose body never comes.
	closes("produce frame of 16 MiB + 1", []byte{0x01, 0, 0, 1, 0, 0, 0, 9})
	closes("metadata frame of 1 MiB + 1", []byte{0, 0x10, 0, 1, 0, 3, 0, 4})

	// answers: a Produce that must be answered with code, having
	// allocated under the budget beyond its frame. What the request costs
	// is the least of three tries: decoders are pooled, and a try that
	// finds the pool emptied by a collection pays for a cold one (a zstd
	// window of up to 8 MiB, lz4 blocks of up to 4 MiB), which is the
	// server's state, not the request's.
	answers := func(name string, f []byte, code int16, extra uint64) {
		t.Run(name, func(t *testing.T) {
			c := dialRaw(t, addr)
			least := uint64(1 << 62)
			for range 3 {
				var got int16
				grew := heapGrowth(func() {
					resp := kmsg.NewPtrProduceResponse()
					resp.Version = 9
					if !c.roundTrip(f, resp) {
						t.Fatal("connection closed")
					}
					got = resp.Topics[0].Partitions[0].ErrorCode
				})
				if got != code {
					t.Fatalf("answered %v, want %v", kerr.ErrorForCode(got), kerr.ErrorForCode(code))
				}
				least = min(least, grew)
			}
			t.Logf("%d-byte frame: %d bytes allocated", len(f), least)
			if raceEnabled {
				return // sync.Pool drops items at random under -race
			}
			if least > badInputBudget+uint64(len(f))+extra {
				t.Fatalf("heap grew by %d bytes for a %d-byte frame", least, len(f))
			}
		})
	}
	bombs := map[string]struct {
		c     batch.Codec
		data  []byte
		extra uint64 // the decoder's state the format allows
	}{
		// A zstd frame declares its window (8 MiB at this level), which a
		// decoder holds whole; pooled decoders keep theirs, but a try
		// after two collections finds the pool empty and pays for a cold
		// one, and under load every try may.
		"zstd bomb of 1 GiB": {c: batch.CodecZstd, data: bomb(func(w io.Writer) io.WriteCloser {
			zw, _ := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedBestCompression), zstd.WithEncoderConcurrency(1))
			return zw
		}), extra: 9 << 20},
		"gzip bomb of 1 GiB": {c: batch.CodecGzip, data: bomb(func(w io.Writer) io.WriteCloser {
			zw, _ := gzip.NewWriterLevel(w, gzip.BestCompression)
			return zw
		})},
		// An lz4 frame declares blocks of up to 4 MiB, and the decoder
		// holds one whole (pierrec/lz4 pools it, but not across the
		// collections each try starts with).
		"lz4 bomb of 1 GiB": {c: batch.CodecLZ4, data: bomb(func(w io.Writer) io.WriteCloser { return lz4.NewWriter(w) }), extra: 4 << 20},
		// Snappy declares its size: 6 bytes declaring 32 MiB - 1 (refused
		// before allocating since the block cannot hold it), and the
		// densest real block, 1 GiB declared (over the cap).
		"snappy, 6 bytes declaring 32 MiB": {c: batch.CodecSnappy, data: append(binary.AppendUvarint(nil, 32<<20-1), 0, 0, 63<<2|2, 1, 0)},
		"snappy bomb declaring 1 GiB": {c: batch.CodecSnappy, data: append(binary.AppendUvarint(nil, 1<<30),
			bytes.Repeat([]byte{63<<2 | 2, 1, 0}, 1<<14)...)},
	}
	for name, b := range bombs {
		f := produceFrame("t", withCodec(t, b.c, 1000, b.data))
		// zstd blocks hold at most 128 KiB, so 1 GiB takes 8,192 blocks
		// of a few bytes each: about 32 KiB, the smallest a 1 GiB bomb gets.
		if b.c == batch.CodecZstd && len(b.data) > 64<<10 {
			t.Fatalf("the zstd bomb is %d bytes", len(b.data))
		}
		answers(name, f, kerr.CorruptMessage.Code, b.extra)
	}
	// Messages beyond the topic's max.message.bytes (1 KiB).
	big := make([]batch.Record, 1)
	big[0].Value = make([]byte, 4<<10)
	bigBatch, err := batch.Encode(nil, batch.Header{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, big)
	if err != nil {
		t.Fatal(err)
	}
	answers("message beyond max.message.bytes", produceFrame("small", bigBatch), kerr.MessageTooLarge.Code, 0)
	// Nothing refused was stored.
	for _, topic := range []string{"t", "small"} {
		if info, _ := br.DescribeTopic(topic); info.Messages != 0 {
			t.Fatalf("%s: stored %d messages", topic, info.Messages)
		}
	}
}
