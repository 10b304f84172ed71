//go:build race

package api_test

// raceEnabled: under the race detector sync.Pool drops a random share of the
// items put back, so pooled buffers cannot be counted on.
const raceEnabled = true
