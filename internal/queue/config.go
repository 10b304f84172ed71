package queue

import (
	"fmt"
	"math"
	"time"
)

// Defaults applied to zero Config fields.
const (
	DefaultAckTimeout     = 30 * time.Second
	DefaultMaxDeliveries  = 5
	DefaultInitialBackoff = time.Second
	DefaultMaxBackoff     = 5 * time.Minute
	DefaultMultiplier     = 2.0
	DefaultMaxInFlight    = 1000
	DefaultMaxTracked     = 100_000
	DefaultParkHorizon    = time.Minute
	DefaultMaxErrorLen    = 1024
)

// MaxExtend caps the lease extension Extend grants in one call (or
// AckTimeout, if that is longer).
const MaxExtend = 12 * time.Hour

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.AckTimeout == 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	if c.MaxDeliveries == 0 {
		c.MaxDeliveries = DefaultMaxDeliveries
	}
	c.Backoff = c.Backoff.WithDefaults()
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.MaxTracked == 0 {
		c.MaxTracked = DefaultMaxTracked
	}
	if c.ParkHorizon == 0 {
		c.ParkHorizon = DefaultParkHorizon
	}
	if c.MaxErrorLen == 0 {
		c.MaxErrorLen = DefaultMaxErrorLen
	}
	return c
}

// WithDefaults returns b with every zero field set to its default.
func (b Backoff) WithDefaults() Backoff {
	if b.Initial == 0 {
		b.Initial = DefaultInitialBackoff
	}
	if b.Max == 0 {
		b.Max = max(DefaultMaxBackoff, b.Initial)
	}
	if b.Multiplier == 0 {
		b.Multiplier = DefaultMultiplier
	}
	return b
}

// Validate reports the first invalid field of c after defaults are applied.
func (c Config) Validate() error {
	c = c.WithDefaults()
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"AckTimeout", int64(c.AckTimeout)},
		{"MaxDeliveries", int64(c.MaxDeliveries)},
		{"MaxInFlight", int64(c.MaxInFlight)},
		{"MaxTracked", int64(c.MaxTracked)},
		{"ParkHorizon", int64(c.ParkHorizon)},
		{"MaxErrorLen", int64(c.MaxErrorLen)},
	} {
		if f.v < 1 {
			return fmt.Errorf("queue: invalid config: %s must be positive, got %d", f.name, f.v)
		}
	}
	if c.Ordering != OrderNone && c.Ordering != OrderKey {
		return fmt.Errorf("queue: invalid config: unknown Ordering %d", c.Ordering)
	}
	if c.OnExpired != ExpireDeadLetter && c.OnExpired != ExpireDrop {
		return fmt.Errorf("queue: invalid config: unknown OnExpired %d", c.OnExpired)
	}
	return c.Backoff.Validate()
}

// Validate reports the first invalid field of b after defaults are applied.
func (b Backoff) Validate() error {
	b = b.WithDefaults()
	switch {
	case b.Initial < 0:
		return fmt.Errorf("queue: invalid backoff: Initial %v is negative", b.Initial)
	case b.Max < b.Initial:
		return fmt.Errorf("queue: invalid backoff: Max %v is below Initial %v", b.Max, b.Initial)
	case !(b.Multiplier >= 1) || math.IsInf(b.Multiplier, 1): // also true for NaN
		return fmt.Errorf("queue: invalid backoff: Multiplier %v is not a finite number of at least 1", b.Multiplier)
	case b.Jitter != JitterFull && b.Jitter != JitterEqual && b.Jitter != JitterNone:
		return fmt.Errorf("queue: invalid backoff: unknown Jitter %d", b.Jitter)
	}
	for i, d := range b.Delays {
		if d < 0 {
			return fmt.Errorf("queue: invalid backoff: Delays[%d] %v is negative", i, d)
		}
	}
	return nil
}
