//go:build !race

package batch

// raceEnabled reports whether the race detector is on; see race_test.go.
const raceEnabled = false
