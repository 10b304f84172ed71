package kafka

import (
	"encoding/binary"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzDecodeRequest feeds arbitrary frames to the request decoding path
// (header, tagged fields, every registered API at every version): it must
// never panic, and a request that decodes must encode and decode again to
// the same bytes.
func FuzzDecodeRequest(f *testing.F) {
	s := New(nil, Config{})
	seed := func(req kmsg.Request) {
		b := binary.BigEndian.AppendUint16(nil, uint16(req.Key()))
		b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
		b = binary.BigEndian.AppendUint32(b, 1)
		b = binary.BigEndian.AppendUint16(b, 1)
		b = append(b, 'c')
		if req.IsFlexible() {
			b = append(b, 0)
		}
		f.Add(req.AppendTo(b))
	}
	for key, api := range s.apis {
		for v := api.min; v <= api.max; v++ {
			req := kmsg.RequestForKey(key)
			req.SetVersion(v)
			seed(req)
		}
	}
	md := kmsg.NewPtrMetadataRequest()
	md.Version = 12
	t := "orders"
	md.Topics = []kmsg.MetadataRequestTopic{{Topic: &t}}
	seed(md)
	f.Fuzz(func(t *testing.T, frame []byte) {
		body, h, err := parseHeader(frame)
		if err != nil {
			return
		}
		req, _, err := s.decode(h, body)
		if err != nil || req == nil {
			return
		}
		again := kmsg.RequestForKey(h.key)
		again.SetVersion(h.version)
		if err := again.ReadFrom(req.AppendTo(nil)); err != nil {
			t.Fatalf("%s v%d does not decode after re-encoding: %v", kmsg.NameForKey(h.key), h.version, err)
		}
	})
}
