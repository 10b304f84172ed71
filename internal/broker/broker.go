// Package broker ties Spool together: it owns the catalog and the partition
// logs, and implements publishing (partitioning, de-duplication, capacity
// limits) and subscriptions (fan-out, filters, consumer groups, committed
// offsets). Protocol front ends (the native API, later Kafka) call it; it
// knows nothing about wire formats.
//
// Every operation on a topic or subscription enters through a Broker method
// that names the resource, so authorization can later be checked in one
// place.
package broker

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/clock"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/seglog"
	"github.com/spoolmq/spool/internal/state"
	"github.com/spoolmq/spool/internal/vfs"
)

// Config configures a Broker.
type Config struct {
	// DataDir holds topics/ (partition logs); the state store is opened by
	// the caller and passed in State.
	DataDir string
	FS      vfs.FS
	State   *state.Store
	Clock   clock.Clock
	Logger  *slog.Logger
	// Tracer, if set, hears what the broker's spans are made of
	// (trace.go); nil: no tracing work at all.
	Tracer Tracer
	// Log holds defaults for partition logs (segment size, limits, flush
	// size); per-topic settings (durability, retention) override them.
	// Unset fields take seglog's defaults (and batch's, for the limits).
	Log seglog.Options
	// Defaults fill unset topic config fields; its own unset fields take
	// the built-in defaults (catalog.DefaultDefaults).
	Defaults catalog.Defaults
	// DedupMaxEntries bounds the ids remembered per topic for
	// de-duplication; default DefaultDedupMaxEntries.
	DedupMaxEntries int
	// MaintenanceInterval is how often retention, capacity limits and
	// consumer-group session timeouts are checked; default 1 s.
	MaintenanceInterval time.Duration
	// TopicFullRetryAfter is the retry-after hint of topic_full errors;
	// default 1 s.
	TopicFullRetryAfter time.Duration
	// Meta orders catalog changes on a cluster (its metadata group); nil
	// on a single node, which applies each change at once.
	Meta MetaLog
	// Replicator makes every partition a raft group's log (a cluster);
	// nil: a single node's plain logs.
	Replicator Replicator
	// MetaTimeout bounds how long a catalog change waits for the cluster
	// to order and apply it; default 10 s.
	MetaTimeout time.Duration
	// Forward publishes on another node of a cluster: the subscription
	// coordinator's own publishes (dead-letter copies, redriven messages)
	// to partitions another node leads. nil: refused there.
	Forward Forwarder
	// MinFreeBytes is the free-space watermark of the data directory's
	// file system (storage.min-free-bytes): below it publishes are refused
	// with the retriable disk_full until the free space is back at
	// ResumeFreeBytes (disk.go). Default DefaultMinFreeBytes; negative:
	// no gate.
	MinFreeBytes int64
	// DiskFree measures the free bytes of the data directory's file
	// system (false: cannot be measured, no gate). Default: statfs of
	// DataDir (vfs.FreeBytes) when FS is the operating system's; with any
	// other FS and no DiskFree there is no gate.
	DiskFree func() (uint64, bool)
	// DiskCheckInterval is how often the free space is sampled; default
	// 1 s.
	DiskCheckInterval time.Duration
}

// DefaultDedupMaxEntries is the default of Config.DedupMaxEntries
// (dedup.max-entries): about 37 MiB of memory per topic when full.
const DefaultDedupMaxEntries = 200_000

// Broker is the core of a Spool server.
type Broker struct {
	cfg     Config
	fs      vfs.FS
	clock   clock.Clock
	logger  *slog.Logger
	catalog *catalog.Catalog
	nonce   string // distinguishes this incarnation's generated member ids

	mu     sync.RWMutex
	topics map[string]*topic // guarded by mu
	closed bool              // guarded by mu

	// deadLetterMu serializes creating subscriptions that create their
	// dead-letter topic, so that one undoing its topic never removes it
	// from under another being created with the same one.
	deadLetterMu sync.Mutex

	creating createGates // commits creating stream subscriptions (stream_commit.go)

	stop      chan struct{}
	done      chan struct{}
	queueDone chan struct{}
	queueKick chan struct{} // capacity 1: a queue subscription has effects to make durable

	// coordTerm is the metadata term in which this node coordinates
	// subscriptions (a cluster; 0: it does not). See sub_state.go.
	coordTerm atomic.Uint64

	schemas schemaValidator // validates bound topics' messages (schema.go)

	appliersMu sync.Mutex
	appliers   map[string]SpaceApplier // replicated spaces' appliers, by space name; guarded by appliersMu
	// spaceApplyMu serializes applying replicated spaces' changes.
	spaceApplyMu sync.Mutex

	endReads    chan struct{} // closed by EndSessions: topic reads end
	endReadsOne sync.Once

	recovery struct { // what Open found, for its summary log line
		partitions, segments, scanned, torn int
		scannedBytes                        int64
	}
	recovered recoveryCounters // every recovery since the process started, for metrics
	events    eventQueue       // system events waiting for Maintain to publish them (events.go)

	disk     *diskGate     // the free-space gate (disk.go); nil: none
	backupMu sync.Mutex    // one Backup at a time (TryLock; backup.go)
	diskDone chan struct{} // closed when watchDisk returns
}

// Open loads the catalog, opens and recovers every topic's partition logs,
// removes directories of topics that no longer exist, rebuilds the
// de-duplication windows, and starts the maintenance loop.
func Open(cfg Config) (*Broker, error) {
	if cfg.FS == nil {
		cfg.FS = vfs.Default
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Defaults = cfg.Defaults.Complete()
	if cfg.DedupMaxEntries <= 0 {
		cfg.DedupMaxEntries = DefaultDedupMaxEntries
	}
	if cfg.MaintenanceInterval <= 0 {
		cfg.MaintenanceInterval = time.Second
	}
	if cfg.TopicFullRetryAfter <= 0 {
		cfg.TopicFullRetryAfter = time.Second
	}
	if cfg.MinFreeBytes == 0 {
		cfg.MinFreeBytes = DefaultMinFreeBytes
	}
	cfg.MinFreeBytes = min(cfg.MinFreeBytes, 1<<62) // beyond any disk; keeps ResumeFreeBytes from overflowing
	if cfg.DiskCheckInterval <= 0 {
		cfg.DiskCheckInterval = time.Second
	}
	if cfg.DiskFree == nil && cfg.FS == vfs.Default {
		dir := cfg.DataDir
		cfg.DiskFree = func() (uint64, bool) { return vfs.FreeBytes(dir) }
	}
	if cfg.Log.Logger == nil {
		cfg.Log.Logger = cfg.Logger
	}
	if cfg.Log.Clock == nil {
		cfg.Log.Clock = cfg.Clock
	}
	lo, err := cfg.Log.WithDefaults()
	if err != nil {
		return nil, fmt.Errorf("broker: partition log options: %w", err)
	}
	cfg.Log = lo
	cat, err := catalog.Load(cfg.State)
	if err != nil {
		return nil, err
	}
	b := &Broker{
		cfg:       cfg,
		fs:        cfg.FS,
		clock:     cfg.Clock,
		logger:    cfg.Logger,
		catalog:   cat,
		nonce:     newUUID()[:8],
		topics:    map[string]*topic{},
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		queueDone: make(chan struct{}),
		queueKick: make(chan struct{}, 1),
		endReads:  make(chan struct{}),
		diskDone:  make(chan struct{}),
	}
	if err := vfs.MkdirAllSync(b.fs, b.topicsDir(), 0o755); err != nil {
		return nil, fmt.Errorf("broker: create topics directory: %w", err)
	}
	for _, meta := range cat.Topics() {
		t, err := b.openTopic(meta)
		if err != nil {
			b.closeTopics()
			return nil, err
		}
		b.topics[meta.Name] = t
	}
	if err := b.removeOrphans(); err != nil {
		b.closeTopics()
		return nil, err
	}
	subs := 0
	for _, t := range b.topics {
		if err := t.loadSubs(); err != nil {
			b.closeTopics()
			return nil, err
		}
		subs += len(t.subs)
	}
	r := b.recovery
	b.logger.Info("recovered data directory", "topics", len(b.topics), "subscriptions", subs,
		"partitions", r.partitions, "segments", r.segments, "segments_scanned", r.scanned,
		"bytes_scanned", r.scannedBytes, "torn_tails_cut", r.torn)
	if cfg.MinFreeBytes > 0 && cfg.DiskFree != nil {
		if _, ok := cfg.DiskFree(); ok {
			b.disk = newDiskGate(cfg.MinFreeBytes, cfg.DiskFree)
			b.sampleDisk() // a broker opened on a full disk refuses from the start
		}
	}
	go b.maintain()
	go b.queueLoop()
	if b.disk != nil {
		go b.watchDisk()
	} else {
		close(b.diskDone)
	}
	return b, nil
}

func (b *Broker) topicsDir() string { return filepath.Join(b.cfg.DataDir, "topics") }

// topicDir is <data>/topics/<name>-<id>: the id makes a re-created topic of
// the same name never meet the old one's files.
func (b *Broker) topicDir(meta catalog.Topic) string {
	return filepath.Join(b.topicsDir(), meta.Name+"-"+meta.ID)
}

// removeOrphans deletes topic directories that the catalog does not name:
// leftovers of a topic created or deleted when the process stopped.
func (b *Broker) removeOrphans() error {
	names, err := b.fs.List(b.topicsDir())
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, t := range b.topics {
		want[filepath.Base(b.topicDir(t.meta))] = true
	}
	removed := false
	for _, n := range names {
		if want[n] {
			continue
		}
		b.logger.Warn("removing directory of a topic that does not exist", "dir", n)
		if err := b.fs.RemoveAll(filepath.Join(b.topicsDir(), n)); err != nil {
			return err
		}
		removed = true
	}
	if removed {
		return vfs.SyncDir(b.fs, b.topicsDir())
	}
	return nil
}

// Config returns the broker's config as Open completed it: every unset
// field at its default.
func (b *Broker) Config() Config { return b.cfg }

// Close stops the maintenance loop, ends every consumer session and closes
// every log (sealing it, so the next start need not scan).
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	close(b.stop)
	<-b.done
	<-b.queueDone
	<-b.diskDone
	b.QueueTick() // persist the queue subscriptions' last progress
	return b.closeTopics()
}

func (b *Broker) closeTopics() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errList []error
	for _, t := range b.topics {
		if err := t.close(); err != nil {
			errList = append(errList, err)
		}
	}
	b.topics = map[string]*topic{}
	return errors.Join(errList...)
}

// maintain runs retention, capacity limits and group session timeouts.
func (b *Broker) maintain() {
	defer close(b.done)
	t := time.NewTicker(b.cfg.MaintenanceInterval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.Maintain()
		}
	}
}

// Maintain runs one maintenance pass now: retention and capacity limits on
// every topic, consumer-group session timeouts and, on a cluster, the end of
// publishes waiting on partitions this node stopped leading. Tests with a fake clock
// call it directly.
func (b *Broker) Maintain() {
	now := b.clock.Now()
	for _, t := range b.topicList() {
		// Before anything that takes the topic's life lock (see
		// checkLeader).
		for _, r := range t.replicas() {
			r.checkLeader()
		}
		t.maintain()
		t.watchSubs(now)
	}
	b.watchStorage()
	b.publishEvents()
}

func (b *Broker) topicList() []*topic {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make([]*topic, 0, len(b.topics))
	for _, t := range b.topics {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].meta.Name < out[j].meta.Name })
	return out
}

// topic returns a live topic or topic_not_found.
func (b *Broker) topic(name string) (*topic, error) {
	b.mu.RLock()
	t, ok := b.topics[name]
	closed := b.closed
	b.mu.RUnlock()
	if closed {
		return nil, errs.New(errs.Unavailable, "broker is shutting down")
	}
	if !ok {
		return nil, errs.New(errs.TopicNotFound, "topic %q not found", name)
	}
	return t, nil
}

// newUUID returns a random (version 4) UUID string.
func newUUID() string {
	var u [16]byte
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	s := fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
	return strings.ToLower(s)
}

// EndSessions ends every consumer session and topic read (their Next
// returns an unavailable error), so that a shutting-down server's stream
// handlers return.
func (b *Broker) EndSessions() {
	b.endReadsOne.Do(func() { close(b.endReads) })
	for _, t := range b.topicList() {
		t.subsMu.Lock()
		for _, s := range t.subs {
			s.mu.Lock()
			for _, sess := range s.sessions {
				sess.closeLocked(errs.New(errs.Unavailable, "server is shutting down"))
			}
			s.mu.Unlock()
		}
		t.subsMu.Unlock()
	}
}

// queueInterval is how often queue subscriptions expire leases, load
// parked messages that come due, and save their progress: acknowledgements
// younger than this may be delivered again after a crash.
const queueInterval = 50 * time.Millisecond

// queueLoop drives every queue subscription's timers and persistence.
func (b *Broker) queueLoop() {
	defer close(b.queueDone)
	t := time.NewTicker(queueInterval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
		case <-b.queueKick:
		}
		b.QueueTick()
	}
}

// queueWake asks the queue loop to run soon.
func (b *Broker) queueWake() {
	select {
	case b.queueKick <- struct{}{}:
	default:
	}
}

// QueueTick runs one pass over every queue subscription now (tests with a
// fake clock call it directly).
//
// On a cluster only the subscription coordinator runs it. The topic's life
// is not held while a subscription ticks: its writes wait for the metadata
// group, whose applying may need it (a tick of a deleted topic's
// subscription finds it deleted).
func (b *Broker) QueueTick() {
	if b.cfg.Meta != nil && b.coordTerm.Load() == 0 {
		return
	}
	now := b.clock.Now()
	for _, t := range b.topicList() {
		t.life.RLock()
		deleted := t.deleted
		t.life.RUnlock()
		if deleted {
			continue
		}
		t.subsMu.Lock()
		subs := make([]*subscription, 0, len(t.subs))
		for _, s := range t.subs {
			if s.q != nil {
				subs = append(subs, s)
			}
		}
		t.subsMu.Unlock()
		for _, s := range subs {
			s.queueTick(now)
		}
	}
}
