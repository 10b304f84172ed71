package telemetry

import "testing"

func TestWantsReadsTheSampledFlag(t *testing.T) {
	base := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-"
	for flags, want := range map[string]bool{"00": false, "01": true, "02": false, "03": true, "0a": false, "0b": true, "ff": true, "zz": true} {
		if got := wants(true, base+flags); got != want {
			t.Errorf("flags %s: %v, want %v", flags, got, want)
		}
		if !wants(false, []byte(base+flags)) {
			t.Errorf("flags %s: a sampler that does not follow the parent decides itself", flags)
		}
	}
	if !wants(true, "garbage") {
		t.Error("a malformed traceparent is left to the sampler")
	}
}
