package recordbatch

import "testing"

// Vectors from Apache Kafka's UtilsTest.testMurmur2 and librdkafka's
// rdmurmur2 tests.
func TestMurmur2KafkaVectors(t *testing.T) {
	for in, want := range map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc":   479470107,
		"kafka": -798503068,
		"1":     -1993445489,
		"12":    126087238,
		"123":   -267702483,
		"1234":  -1614185708,
		"12345": -1188365604,
	} {
		if got := murmur2([]byte(in)); got != want {
			t.Errorf("murmur2(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestKeyPartition(t *testing.T) {
	// toPositive(murmur2("foobar")) % 7, as Java computes it.
	want := int32((int64(-790332482) & 0x7fffffff) % 7)
	if got := KeyPartition([]byte("foobar"), 7); got != want {
		t.Fatalf("ForKey = %d, want %d", got, want)
	}
	for i := range 1000 {
		p := KeyPartition([]byte{byte(i), byte(i >> 8)}, 3)
		if p < 0 || p >= 3 {
			t.Fatalf("partition %d out of range", p)
		}
	}
}
