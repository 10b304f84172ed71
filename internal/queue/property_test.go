package queue

import (
	"math/rand/v2"
	"testing"
)

// TestProperty runs random operation sequences against the reference model
// (results must agree at every step), checks the contract's guarantees after
// every step, then drains the partition to check liveness.
func TestProperty(t *testing.T) {
	seeds, steps := 40, 3000
	if testing.Short() {
		seeds, steps = 8, 1000
	}
	for seed := range uint64(seeds) {
		c := randChooser{rand.New(rand.NewPCG(seed, 99))}
		cfg := randomConfig(c)
		w := newWorld(t, c, cfg, seed)
		w.crashes = seed%4 == 3
		for range steps {
			w.step()
		}
		t.Logf("seed %d: %v", seed, w.tally)
		w.drain()
	}
}

// FuzzScenario drives a world from the fuzz input: the first bytes choose
// the configuration, the rest the operations.
func FuzzScenario(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("\x05\x01\x02\x03\x01\x00\x01\x02\x00\x01\x02\x10\x20\x30\x40\x50\x60\x70\x80\x90"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &byteChooser{b: data}
		cfg := randomConfig(c)
		w := newWorld(t, c, cfg, 1)
		w.crashes = c.intn(2) == 1
		for steps := 0; !c.done() && steps < 2000; steps++ {
			w.step()
		}
		w.drain()
	})
}
