package bench

import (
	"testing"
	"time"
)

// TestNativeSmoke runs a tiny native benchmark so the driver stays working;
// real runs are `spool bench native`.
func TestNativeSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	res, err := RunNative(NativeConfig{Dir: t.TempDir(), Size: 256, Messages: 2000, Duration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.PipelinedRate <= 0 || res.ConsumeRate <= 0 || res.SyncP50 <= 0 {
		t.Fatalf("empty result %+v", res)
	}
}
