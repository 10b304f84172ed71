package bench

import (
	"testing"
	"time"
)

func TestProfNative(t *testing.T) {
	res, err := RunNative(NativeConfig{Dir: t.TempDir(), Size: 256, Messages: 1000000, Duration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
}
