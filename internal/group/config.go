package group

import (
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultSessionTimeout    = 10 * time.Second
	DefaultMinSessionTimeout = time.Second
	DefaultMaxSessionTimeout = 5 * time.Minute
	DefaultMaxMembers        = 1000
	DefaultMaxPartitions     = 1 << 16
)

// MaxIDLen bounds client ids, instance ids and caller-chosen member ids, in bytes. Generated
// member ids may be longer (they embed the client id).
const MaxIDLen = 255

const maxNonceLen = 64

// Config tunes a Coordinator. Zero fields take the defaults; negative ones are invalid.
type Config struct {
	// SessionTimeout is the session of a member that asks for none (default 10 s); it must lie
	// within [MinSessionTimeout, MaxSessionTimeout].
	SessionTimeout time.Duration
	// MinSessionTimeout and MaxSessionTimeout bound what a member may ask for in JoinOptions
	// (defaults 1 s and 5 min).
	MinSessionTimeout time.Duration
	MaxSessionTimeout time.Duration
	// RevokeTimeout is how long a member may take to confirm a revocation before the partition
	// is granted to its new owner anyway (default SessionTimeout). The late member is not
	// evicted; its commits for the partition are refused from then on.
	RevokeTimeout time.Duration
	// MaxMembers caps the group (default 1000); replacing a static member does not count.
	MaxMembers int
	// MaxPartitions caps the partition count (default 65536).
	MaxPartitions int
	// IDNonce is put into every generated member id. Set it to something unique to this
	// coordinator's incarnation (a broker start token) so that ids handed out before a restart
	// are never handed out again; at most 64 bytes, printable.
	IDNonce string
}

func (c Config) withDefaults() (Config, error) {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"SessionTimeout", int64(c.SessionTimeout)},
		{"MinSessionTimeout", int64(c.MinSessionTimeout)},
		{"MaxSessionTimeout", int64(c.MaxSessionTimeout)},
		{"RevokeTimeout", int64(c.RevokeTimeout)},
		{"MaxMembers", int64(c.MaxMembers)},
		{"MaxPartitions", int64(c.MaxPartitions)},
	} {
		if f.v < 0 {
			return c, fmt.Errorf("%w: negative %s", ErrInvalidConfig, f.name)
		}
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = DefaultSessionTimeout
	}
	if c.MinSessionTimeout == 0 {
		c.MinSessionTimeout = min(DefaultMinSessionTimeout, c.SessionTimeout)
	}
	if c.MaxSessionTimeout == 0 {
		c.MaxSessionTimeout = max(DefaultMaxSessionTimeout, c.SessionTimeout)
	}
	if c.RevokeTimeout == 0 {
		c.RevokeTimeout = c.SessionTimeout
	}
	if c.MaxMembers == 0 {
		c.MaxMembers = DefaultMaxMembers
	}
	if c.MaxPartitions == 0 {
		c.MaxPartitions = DefaultMaxPartitions
	}
	if c.SessionTimeout < c.MinSessionTimeout || c.SessionTimeout > c.MaxSessionTimeout {
		return c, fmt.Errorf("%w: session timeout %v outside [%v, %v]", ErrInvalidConfig,
			c.SessionTimeout, c.MinSessionTimeout, c.MaxSessionTimeout)
	}
	if len(c.IDNonce) > maxNonceLen || !printable(c.IDNonce) {
		return c, fmt.Errorf("%w: id nonce %q", ErrInvalidConfig, c.IDNonce)
	}
	return c, nil
}

// JoinOptions describe a joining member. All fields are optional.
type JoinOptions struct {
	// ClientID names the client application; it is shown by Describe and starts generated
	// member ids.
	ClientID string
	// InstanceID makes the member static: a later join with the same instance id, while this
	// member's session lasts, takes over its member slot and partitions without a rebalance.
	// Instance ids are unique within the group.
	InstanceID string
	// SessionTimeout overrides Config.SessionTimeout for this member; it must lie within
	// [Config.MinSessionTimeout, Config.MaxSessionTimeout].
	SessionTimeout time.Duration
}

func (c *Coordinator) checkJoinOptions(o JoinOptions) (time.Duration, error) {
	if !validID(o.ClientID) {
		return 0, fmt.Errorf("%w: client id %q", ErrInvalidID, o.ClientID)
	}
	if !validID(o.InstanceID) {
		return 0, fmt.Errorf("%w: instance id %q", ErrInvalidID, o.InstanceID)
	}
	t := o.SessionTimeout
	if t == 0 {
		return c.cfg.SessionTimeout, nil
	}
	if t < c.cfg.MinSessionTimeout || t > c.cfg.MaxSessionTimeout {
		return 0, fmt.Errorf("%w: %v outside [%v, %v]", ErrInvalidSessionTimeout,
			t, c.cfg.MinSessionTimeout, c.cfg.MaxSessionTimeout)
	}
	return t, nil
}

// validID accepts the empty string; callers decide whether empty is allowed.
func validID(s string) bool { return len(s) <= MaxIDLen && printable(s) }

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}
