package group

import (
	"errors"
	"fmt"
)

var (
	// ErrUnknownMember: the member id is not a member (never joined, left, evicted or replaced);
	// the client must join again.
	ErrUnknownMember = errors.New("group: unknown member")
	// ErrStaleGeneration is matched by every *StaleGenerationError; it is retriable once the
	// member has picked up the current generation.
	ErrStaleGeneration = errors.New("group: stale generation")
	// ErrNotOwner: the member neither owns the partition nor is revoking it.
	ErrNotOwner = errors.New("group: partition not owned by member")
	// ErrGroupFull: a new member would exceed Config.MaxMembers.
	ErrGroupFull = errors.New("group: group is full")
	// ErrInvalidPartition: a partition outside [0, Partitions()).
	ErrInvalidPartition = errors.New("group: invalid partition")
	// ErrInvalidPartitionCount: a negative count, one above Config.MaxPartitions, or a decrease.
	ErrInvalidPartitionCount = errors.New("group: invalid partition count")
	// ErrInvalidSessionTimeout: a session timeout outside [MinSessionTimeout, MaxSessionTimeout].
	ErrInvalidSessionTimeout = errors.New("group: invalid session timeout")
	// ErrInvalidID: a client, instance or new member id that is too long, not UTF-8 or holds
	// control characters.
	ErrInvalidID = errors.New("group: invalid id")
	// ErrInstanceMismatch: a rejoin whose instance id differs from the member's own.
	ErrInstanceMismatch = errors.New("group: instance id does not match member")
	// ErrInvalidConfig: New was given a Config it cannot use.
	ErrInvalidConfig = errors.New("group: invalid config")
)

// StaleGenerationError reports a heartbeat or commit carrying a generation other than the
// current one (older, or from a previous incarnation of the coordinator).
type StaleGenerationError struct {
	Member  string
	Got     int64 // the generation the member sent
	Current int64 // the coordinator's generation
}

func (e *StaleGenerationError) Error() string {
	return fmt.Sprintf("group: stale generation %d for member %q, current is %d", e.Got, e.Member, e.Current)
}

// Is makes errors.Is(err, ErrStaleGeneration) true.
func (e *StaleGenerationError) Is(target error) bool { return target == ErrStaleGeneration }

func unknownMember(id string) error { return fmt.Errorf("%w %q", ErrUnknownMember, id) }

func invalidPartition(p int32, n int) error {
	return fmt.Errorf("%w %d: the subscription has %d partitions", ErrInvalidPartition, p, n)
}
