package api

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	spoolv1 "github.com/spoolmq/spool/gen/spool/v1"
)

// decodeBatches decodes what proto.Unmarshal decodes, aliasing the records,
// and leaves every other request to it.
func TestDecodeBatches(t *testing.T) {
	reqs := []*spoolv1.PublishRequest{
		{Topic: "t", RequestId: 7, Batches: []*spoolv1.PartitionBatch{{Partition: 3, Records: []byte("abc"), BrokerTime: true}, {Records: []byte("d")}}},
		{Batches: []*spoolv1.PartitionBatch{{Partition: 1023}}},
	}
	for _, want := range reqs {
		data, err := proto.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		data = protowire.AppendTag(data, 99, protowire.VarintType) // an unknown field
		data = protowire.AppendVarint(data, 5)
		got := &spoolv1.PublishRequest{}
		if err := decodeBatches(data, got); err != nil {
			t.Fatal(err)
		}
		ref := &spoolv1.PublishRequest{}
		if err := proto.Unmarshal(data, ref); err != nil {
			t.Fatal(err)
		}
		ref.ProtoReflect().SetUnknown(nil)
		if !proto.Equal(got, ref) {
			t.Errorf("decoded %v, want %v", got, ref)
		}
		if rs := got.Batches[0].Records; len(rs) > 0 && indexOf(data, rs) < 0 {
			t.Error("records copied")
		}
	}
	for _, other := range []*spoolv1.PublishRequest{
		{Topic: "t", Messages: []*spoolv1.Message{{Value: []byte("v")}}},
		{Topic: "t"},
	} {
		data, _ := proto.Marshal(other)
		if err := decodeBatches(data, &spoolv1.PublishRequest{}); !errors.Is(err, errNotBatches) {
			t.Errorf("%v: %v", other, err)
		}
	}
	if err := decodeBatches([]byte{0x22, 0x05, 0x12}, &spoolv1.PublishRequest{}); !errors.Is(err, errNotBatches) {
		t.Errorf("truncated: %v", err)
	}
}

// indexOf returns where sub's memory starts within data's, or −1.
func indexOf(data, sub []byte) int {
	for i := range data {
		if &data[i] == &sub[0] {
			return i
		}
	}
	return -1
}
