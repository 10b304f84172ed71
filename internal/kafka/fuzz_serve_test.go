package kafka_test

import (
	"encoding/binary"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/kafka"
	"github.com/spoolmq/spool/internal/serverhook"
)

// FuzzServeRequest sends one request of any supported API key and version
// (the server's own table), with an arbitrary body, to a real server over
// a real socket, and reads until the answer or the connection's close. The
// server decodes it and, if it decodes, runs the handler against a real
// broker: nothing may panic or hang the connection loop (a panic in a
// server goroutine ends the fuzzing process). Waits the body asks for are
// cut short by the client's deadline.
func FuzzServeRequest(f *testing.F) {
	srv := startServer(f)
	if _, err := serverhook.Broker(srv).CreateTopic("t", catalog.TopicConfig{}); err != nil {
		f.Fatal(err)
	}
	apis := kafka.Versions()
	keys := make([]int16, 0, len(apis))
	for k := range apis {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		for v := apis[k][0]; v <= apis[k][1]; v++ {
			req := kmsg.RequestForKey(k)
			req.SetVersion(v)
			f.Add(uint8(i), uint8(v-apis[k][0]), req.AppendTo(nil))
		}
	}
	md := kmsg.NewPtrMetadataRequest()
	md.Version = 12
	topic := "t"
	md.Topics = []kmsg.MetadataRequestTopic{{Topic: &topic}}
	f.Add(uint8(slices.Index(keys, 3)), uint8(12-apis[3][0]), md.AppendTo(nil))
	addr := srv.KafkaAddr()
	f.Fuzz(func(t *testing.T, ki, vi uint8, body []byte) {
		key := keys[int(ki)%len(keys)]
		rng := apis[key]
		version := rng[0] + int16(vi)%(rng[1]-rng[0]+1)
		req := kmsg.RequestForKey(key)
		req.SetVersion(version)
		fr := []byte{0, 0, 0, 0}
		fr = binary.BigEndian.AppendUint16(fr, uint16(key))
		fr = binary.BigEndian.AppendUint16(fr, uint16(version))
		fr = binary.BigEndian.AppendUint32(fr, 1)
		fr = binary.BigEndian.AppendUint16(fr, 1)
		fr = append(fr, 'c')
		if req.IsFlexible() {
			fr = append(fr, 0)
		}
		fr = append(fr, body...)
		binary.BigEndian.PutUint32(fr, uint32(len(fr)-4))
		nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := nc.Write(fr); err != nil {
			return // closed already
		}
		var sz [4]byte
		if _, err := io.ReadFull(nc, sz[:]); err != nil {
			return // closed, or still waiting (Fetch, JoinGroup, acks=0)
		}
		n := binary.BigEndian.Uint32(sz[:])
		if n > 64<<20 {
			t.Fatalf("%s v%d: a response of %d bytes", kmsg.NameForKey(key), version, n)
		}
	})
}
