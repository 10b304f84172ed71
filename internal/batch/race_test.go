//go:build race

package batch

// raceEnabled: under the race detector sync.Pool drops a random share of the
// items put back, so pooled decoder state cannot be counted on.
const raceEnabled = true
