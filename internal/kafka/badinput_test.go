package kafka_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/spoolmq/spool/internal/batch"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/serverhook"
)

// rawConn sends hand-made frames.
type rawConn struct {
	t  *testing.T
	nc net.Conn
}

func dialRaw(t *testing.T, addr string) *rawConn {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t, nc}
}

func (r *rawConn) send(frame []byte) {
	if _, err := r.nc.Write(frame); err != nil {
		r.t.Fatal(err)
	}
}

// closed reports whether the server closed the connection (rather than
// answering).
func (r *rawConn) closed() bool {
	var b [1]byte
	_, err := r.nc.Read(b[:])
	return err == io.EOF || isReset(err)
}

func isReset(err error) bool {
	var ne *net.OpError
	return err != nil && (bytesContains(err.Error(), "reset") || errorAs(err, &ne))
}

func bytesContains(s, sub string) bool { return bytes.Contains([]byte(s), []byte(sub)) }

func errorAs(err error, target **net.OpError) bool {
	e, ok := err.(*net.OpError)
	if ok {
		*target = e
	}
	return ok
}

// heapGrowth runs fn and returns how much the heap grew (total allocated).
func heapGrowth(fn func()) uint64 {
	runtime.GC()
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	fn()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

func TestBadFramesCloseWithoutAllocating(t *testing.T) {
	srv := startServer(t)
	cases := map[string][]byte{
		"huge length":     {0x7f, 0xff, 0xff, 0xff, 0, 18, 0, 0},
		"negative length": {0xff, 0xff, 0xff, 0xf0, 0, 18, 0, 0},
		"short length":    {0, 0, 0, 2, 0, 18},
		// Metadata v12 (flexible) whose header claims 2^31 tagged fields.
		"tag count":        append([]byte{0, 0, 0, 14, 0, 3, 0, 12, 0, 0, 0, 1, 0xff, 0xff}, 0xff, 0xff, 0xff, 0x07),
		"unknown key":      {0, 0, 0, 10, 0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0xff, 0xff},
		"version too high": {0, 0, 0, 10, 0, 3, 0x7f, 0, 0, 0, 0, 1, 0xff, 0xff},
	}
	for name, frame := range cases {
		t.Run(name, func(t *testing.T) {
			var closed bool
			grew := heapGrowth(func() {
				c := dialRaw(t, srv.KafkaAddr())
				c.send(frame)
				closed = c.closed()
			})
			if !closed {
				t.Fatal("connection not closed")
			}
			if grew > 4<<20 {
				t.Fatalf("heap grew by %d bytes", grew)
			}
		})
	}
	// An array count larger than the bytes present: Metadata v4 with a
	// topic count of 2^30 and no topics.
	md := []byte{0, 0, 0, 0, 0, 3, 0, 4, 0, 0, 0, 7, 0xff, 0xff, 0x40, 0, 0, 0, 1}
	binary.BigEndian.PutUint32(md, uint32(len(md)-4))
	grew := heapGrowth(func() {
		c := dialRaw(t, srv.KafkaAddr())
		c.send(md)
		if !c.closed() {
			t.Error("array count beyond the request not refused")
		}
	})
	if grew > 4<<20 {
		t.Fatalf("heap grew by %d bytes", grew)
	}
}

func TestUnsupportedApiVersionsAnswersV0(t *testing.T) {
	srv := startServer(t)
	c := dialRaw(t, srv.KafkaAddr())
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 9 // beyond what anyone supports
	frame := []byte{0, 0, 0, 0, 0, 18, 0, 9, 0, 0, 0, 5, 0, 0}
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	c.send(frame)
	var sz [4]byte
	if _, err := io.ReadFull(c.nc, sz[:]); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint32(sz[:]))
	io.ReadFull(c.nc, body)
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	if err := resp.ReadFrom(body[4:]); err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != kerr.UnsupportedVersion.Code || len(resp.ApiKeys) == 0 {
		t.Fatalf("response %+v", resp)
	}
	_ = req
}

func produceRaw(t *testing.T, cl *kgo.Client, topic string, records []byte) int16 {
	t.Helper()
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
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

func encodeBatch(t *testing.T, h batch.Header, n int) []byte {
	t.Helper()
	recs := make([]batch.Record, n)
	for i := range recs {
		recs[i] = batch.Record{Value: []byte("v")}
	}
	b, err := batch.Encode(nil, h, recs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBadBatches(t *testing.T) {
	srv := startServer(t)
	if _, err := serverhook.Broker(srv).CreateTopic("t", catalog.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	// Produce v12 names topics; v13 uses ids.
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.KafkaAddr()), kgo.MaxVersions(kversion.V3_9_0()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	plain := batch.Header{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}
	if code := produceRaw(t, cl, "t", encodeBatch(t, plain, 3)); code != 0 {
		t.Fatalf("good batch: %v", kerr.ErrorForCode(code))
	}
	bad := encodeBatch(t, plain, 3)
	bad[len(bad)-1] ^= 1
	if code := produceRaw(t, cl, "t", bad); code != kerr.CorruptMessage.Code {
		t.Fatalf("bad CRC: %v", kerr.ErrorForCode(code))
	}
	ctl := plain
	ctl.Attributes = batch.AttrControl
	if code := produceRaw(t, cl, "t", encodeBatch(t, ctl, 1)); code != kerr.InvalidRecord.Code {
		t.Fatalf("control batch: %v", kerr.ErrorForCode(code))
	}
	// A zstd bomb: a small batch whose records section expands to 1 GiB.
	var bomb bytes.Buffer
	zw, _ := zstd.NewWriter(&bomb, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	zero := make([]byte, 1<<20)
	for range 1024 {
		zw.Write(zero)
	}
	zw.Close()
	b := encodeBatch(t, plain, 1)
	hdr := append([]byte(nil), b[:batch.HeaderSize]...)
	binary.BigEndian.PutUint16(hdr[21:], uint16(batch.CodecZstd))
	binary.BigEndian.PutUint32(hdr[57:], 1000)
	binary.BigEndian.PutUint32(hdr[23:], 999)
	bombBatch := append(hdr, bomb.Bytes()...)
	binary.BigEndian.PutUint32(bombBatch[8:], uint32(len(bombBatch)-12))
	binary.BigEndian.PutUint32(bombBatch[17:], batch.CRC(bombBatch))
	var code int16
	grew := heapGrowth(func() { code = produceRaw(t, cl, "t", bombBatch) })
	if code != kerr.CorruptMessage.Code {
		t.Fatalf("bomb: %v", kerr.ErrorForCode(code))
	}
	// Validation decodes the records while it decompresses them, through a
	// small window: the bomb fails at its first record, and decompressing
	// the rest (to report it as too large) reuses that window. What is
	// allocated is the decoder's state (a zstd window of at most 8 MiB when
	// no decoder is pooled yet) and the request: nothing near the bomb's
	// 1 GiB, nor the 32 MiB cap.
	t.Logf("a 1 GiB zstd bomb: %d bytes allocated while producing it", grew)
	if grew > 16<<20 {
		t.Fatalf("a decompression bomb allocated %d bytes", grew)
	}
	// Nothing of the refused batches was stored.
	if info, _ := serverhook.Broker(srv).DescribeTopic("t"); info.Messages != 3 {
		t.Fatalf("stored %d messages, want the 3 good ones", info.Messages)
	}
}
