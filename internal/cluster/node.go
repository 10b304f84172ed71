// Package cluster makes a Spool server one node of a cluster: the
// connections to its peers (internal/peer), the raft groups it belongs to
// (internal/multiraft), and the metadata group — raft group 0, every node
// a voter — that orders the catalog changes of the broker on every node.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"sync"
	"time"

	"go.etcd.io/raft/v3"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/errs"
	"github.com/spoolmq/spool/internal/multiraft"
	"github.com/spoolmq/spool/internal/peer"
	"github.com/spoolmq/spool/internal/raftlog"
	"github.com/spoolmq/spool/internal/state"
)

// MetaGroup is the raft group of the catalog.
const MetaGroup = 0

// Config configures a Node.
type Config struct {
	Identity
	// Listener accepts the peers' connections (the cluster address); the
	// Node closes it.
	Listener net.Listener
	// Members are the cluster's initial voters, this node among them: id →
	// cluster address. A node that starts a new cluster bootstraps the
	// metadata group with them; later starts take the members from the
	// group's own configuration.
	Members map[uint64]string
	// State is the node's state store (shared with its broker).
	State  *state.Store
	Logger *slog.Logger
	// Tick is raft's clock: heartbeats every tick, elections after 10 to
	// 20 ticks without a leader. Default 100 ms.
	Tick time.Duration
	// ElectionTicks: a follower that hears nothing from its leader for
	// ElectionTicks to twice that starts an election (default 10).
	ElectionTicks int
	// SnapshotEntries and SnapshotKeep: the metadata group snapshots the
	// catalog and compacts its log every SnapshotEntries applied entries,
	// keeping the last SnapshotKeep (multiraft.Config; defaults 10,000
	// and 2,000).
	SnapshotEntries, SnapshotKeep int
	// Join: this node is being added to a running cluster (after `spool
	// cluster add-node`): it does not bootstrap the metadata group but
	// waits for the leader to send it the group's log.
	Join bool
	// Dial connects to peers (TLS when the cluster speaks it); nil: TCP.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
}

// Node is a server's place in its cluster.
type Node struct {
	cfg       Config
	transport *peer.Transport
	rafts     *multiraft.Node
	metaLog   *raftlog.Store
	broker    *broker.Broker // set by StartMetadata
	// removedSeen is when this node first saw each removed node in the
	// registry (its connection is kept for removedGrace), and whether
	// the transport dropped it since.
	removedSeen map[uint64]removedPeer

	mu          sync.Mutex
	started     bool // the metadata group runs
	advertise   NodeInfo
	promoting   bool                // a learner's promotion is in flight
	reassigning bool                // partitions of removed nodes are being reassigned
	partitions  map[uint64]partInfo // partition groups running here

	stop chan struct{}
	wg   sync.WaitGroup
}

// New connects to the peers and starts raft's clock; the metadata group
// starts with StartMetadata, once the broker it applies to is open.
func New(cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 100 * time.Millisecond
	}
	if _, ok := cfg.Members[cfg.Node]; !ok {
		return nil, fmt.Errorf("cluster: node %d is not among the members %v", cfg.Node, memberIDs(cfg.Members))
	}
	cfg.Members = maps.Clone(cfg.Members)
	n := &Node{cfg: cfg, stop: make(chan struct{}), partitions: map[uint64]partInfo{}}
	peers := map[uint64]string{}
	for id, addr := range cfg.Members {
		if id != cfg.Node {
			peers[id] = addr
		}
	}
	n.rafts = multiraft.New(multiraft.Config{ID: cfg.Node, Sender: senderFunc(n.send), Logger: cfg.Logger, Workers: 2, ElectionTicks: cfg.ElectionTicks,
		SnapshotEntries: cfg.SnapshotEntries, SnapshotKeep: cfg.SnapshotKeep})
	t, err := peer.New(peer.Config{Cluster: cfg.Cluster, Node: cfg.Node, Listener: cfg.Listener, Peers: peers,
		Handle: n.rafts.Receive, Lost: n.rafts.PeerLost, Logger: cfg.Logger, Dial: cfg.Dial})
	if err != nil {
		n.rafts.Close()
		return nil, err
	}
	n.transport = t
	n.wg.Add(1)
	go n.tickLoop()
	return n, nil
}

type senderFunc func(to uint64, envs ...peer.Envelope) bool

func (f senderFunc) Send(to uint64, envs ...peer.Envelope) bool { return f(to, envs...) }

// send is the raft driver's Sender (the transport exists by the time
// anything is sent).
func (n *Node) send(to uint64, envs ...peer.Envelope) bool { return n.transport.Send(to, envs...) }

// balanceTicks is how often (in ticks: 10 s by default) a node hands
// partitions back to their preferred leaders.
const balanceTicks = 100

// reassignTicks is how often (in ticks: 5 s by default) the metadata
// leader looks for partitions whose replicas include a removed node.
const reassignTicks = 50

func (n *Node) tickLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.Tick)
	defer t.Stop()
	ticks := 0
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
			n.rafts.Tick()
			n.checkCoordinator()
			n.campaignNew()
			ticks++
			if ticks%10 == 0 {
				n.maybePromote()
				n.refreshRemoved()
				n.handOffIfFailed()
			}
			if ticks%reconcileTicks == 0 {
				n.reconcilePartitions()
			}
			if ticks%reassignTicks == 0 {
				n.reassignRemoved()
			}
			if ticks%balanceTicks == 0 {
				n.balanceLeaders(8)
			}
		}
	}
}

// checkCoordinator stops the broker coordinating subscriptions once this
// node no longer leads the metadata group in the term it coordinates in
// (it starts in LeaderReady).
func (n *Node) checkCoordinator() {
	n.mu.Lock()
	b := n.broker
	n.mu.Unlock()
	if b == nil {
		return
	}
	if term := b.CoordinatorTerm(); term != 0 {
		if lead, now := n.rafts.Leader(MetaGroup); lead != n.cfg.Node || now != term {
			b.SetCoordinator(0)
		}
	}
}

// handOffIfFailed, on the metadata leader, hands the leadership (and with
// it the coordination of subscriptions, which reads every partition from
// this node's replica) to a caught-up voter once a partition group stopped
// here (its log failed): that replica no longer sees what commits.
func (n *Node) handOffIfFailed() {
	failed := n.FailedPartitions()
	if len(failed) == 0 {
		return
	}
	st, ok := n.rafts.Status(MetaGroup)
	if !ok || st.RaftState != raft.StateLeader {
		return
	}
	for id, pr := range st.Progress {
		if id != n.cfg.Node && !pr.IsLearner && pr.RecentActive && pr.Match >= st.HardState.GetCommit() {
			n.cfg.Logger.Warn("cluster: partition replicas on this node failed; handing the metadata leadership (the subscriptions' coordinator) to another node",
				"to", id, "partitions", failed)
			n.rafts.TransferLeadership(MetaGroup, id)
			return
		}
	}
}

// StartMetadata starts the metadata group over the node's state store,
// applying its entries to b: first those committed since b's catalog was
// last written, then every new one.
func (n *Node) StartMetadata(b *broker.Broker) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started {
		return errors.New("cluster: metadata group already started")
	}
	log, err := raftlog.Open(n.cfg.State, MetaGroup)
	if err != nil {
		return err
	}
	sm, err := newMetaMachine(n.cfg.State, b)
	if err != nil {
		return err
	}
	reg, err := loadRegistry(n.cfg.State)
	if err != nil {
		return err
	}
	for _, ni := range reg {
		if ni.ID == n.cfg.Node && ni.Removed {
			return fmt.Errorf("cluster: node %d was removed from the cluster; its data directory cannot rejoin (start a new node with a new id and an empty directory)", ni.ID)
		}
	}
	var peers []raft.Peer
	if !n.cfg.Join {
		for id := range n.cfg.Members {
			peers = append(peers, raft.Peer{ID: id})
		}
	}
	sm.registryChanged = n.refreshPeers
	// Raft hands back every committed entry after the index given here,
	// and the group's configuration is only what its snapshot holds plus
	// the configuration changes it hands back. So start from the latest
	// snapshot (the log's start): raft replays the configuration changes
	// after it, and the state machine skips the entries it applied before
	// (sm.applied). A snapshot received from the leader but not restored
	// before a crash is restored now.
	snap, err := log.Snapshot()
	if err != nil {
		return err
	}
	if snap.GetMetadata().GetIndex() > sm.applied {
		if err := sm.Restore(snap); err != nil {
			return err
		}
	}
	if err := n.rafts.AddGroup(MetaGroup, log, sm, snap.GetMetadata().GetIndex(), peers); err != nil {
		return err
	}
	n.metaLog, n.started, n.broker = log, true, b
	n.refreshPeersLocked(reg)
	return nil
}

// refreshPeers connects to the nodes the registry lists (and the initial
// members), and no longer to removed ones.
func (n *Node) refreshPeers() {
	reg, err := loadRegistry(n.cfg.State)
	if err != nil {
		n.cfg.Logger.Error("cluster: reading the node registry", "err", err)
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.refreshPeersLocked(reg)
}

// removedGrace is how long a node keeps its connection to a node the
// registry lists as removed.
const removedGrace = 5 * time.Second

// removedPeer is a removed node as this node's peer list sees it.
type removedPeer struct {
	seen    time.Time // first seen removed in the registry
	dropped bool      // its grace ended and the transport dropped it
}

// refreshRemoved drops removed nodes whose grace period ended. It runs
// every second from the tick loop until every removed node is dropped:
// not only within a second after the grace, which a tick loop delayed by
// a busy machine (its ticks are dropped while it waits for the metadata
// group's worker) could step over, leaving the removed node a peer until
// the next registry change.
func (n *Node) refreshRemoved() {
	n.mu.Lock()
	pending := false
	for _, r := range n.removedSeen {
		if !r.dropped {
			pending = true
		}
	}
	n.mu.Unlock()
	if pending {
		n.refreshPeers()
	}
}

func (n *Node) refreshPeersLocked(reg []NodeInfo) {
	peers := map[uint64]string{}
	for id, addr := range n.cfg.Members {
		peers[id] = addr
	}
	var dropped []uint64
	for _, ni := range reg {
		if ni.ClusterAddr != "" {
			peers[ni.ID] = ni.ClusterAddr
		}
		if ni.Removed {
			// A removed node stays connected for a grace period: it may
			// still need the commit of its own removal, which its peers
			// apply at the moment it could learn it.
			r, ok := n.removedSeen[ni.ID]
			if !ok {
				r.seen = time.Now()
				if n.removedSeen == nil {
					n.removedSeen = map[uint64]removedPeer{}
				}
				n.removedSeen[ni.ID] = r
			}
			if time.Since(r.seen) >= removedGrace {
				delete(peers, ni.ID)
				dropped = append(dropped, ni.ID)
			}
		}
	}
	delete(peers, n.cfg.Node)
	if err := n.transport.SetPeers(peers); err != nil {
		n.cfg.Logger.Error("cluster: updating peers", "err", err)
		return
	}
	for _, id := range dropped {
		if r := n.removedSeen[id]; !r.dropped {
			r.dropped = true
			n.removedSeen[id] = r
			n.cfg.Logger.Info("cluster: removed node dropped from the peers", "node", id)
		}
	}
}

// Advertise sets the addresses this node's clients use (its native API
// and Kafka listeners, as reachable by others); the node registers them in
// the metadata group, retrying until it succeeds.
func (n *Node) Advertise(httpAddr, kafkaAddr string) {
	n.mu.Lock()
	n.advertise = NodeInfo{ID: n.cfg.Node, ClusterAddr: n.cfg.Listener.Addr().String(), HTTPAddr: httpAddr, KafkaAddr: kafkaAddr}
	n.mu.Unlock()
	n.wg.Add(1)
	go n.registerLoop()
}

func (n *Node) registerLoop() {
	defer n.wg.Done()
	for {
		n.mu.Lock()
		want := n.advertise
		n.mu.Unlock()
		reg, err := loadRegistry(n.cfg.State)
		if err == nil {
			for _, ni := range reg {
				if ni.ID == want.ID && ni.ClusterAddr == want.ClusterAddr && ni.HTTPAddr == want.HTTPAddr && ni.KafkaAddr == want.KafkaAddr {
					return
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err = n.Commit(ctx, encodeNodeChange(changePutNode, want))
			cancel()
			if err == nil {
				continue // check it is there
			}
		}
		select {
		case <-n.stop:
			return
		case <-time.After(5 * n.cfg.Tick):
		}
	}
}

// Registry returns the nodes the metadata group knows, by id.
func (n *Node) Registry() ([]NodeInfo, error) { return loadRegistry(n.cfg.State) }

// Commit orders a catalog change through the metadata group and waits
// until this node applied it (broker.MetaLog).
func (n *Node) Commit(ctx context.Context, change []byte) error {
	return n.mapErr(n.rafts.Propose(ctx, MetaGroup, change))
}

// mapErr turns the raft driver's errors into the API's.
func (n *Node) mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, multiraft.ErrStopped):
		return errs.New(errs.Unavailable, "the cluster's metadata group is not running on this node; retry on another node")
	case errors.Is(err, raft.ErrProposalDropped):
		return errs.New(errs.Unavailable, "the cluster has no metadata leader right now (an election, or this node is cut off from a majority); retry")
	case errors.Is(err, multiraft.ErrOutcomeUnknown):
		return errs.New(errs.Unavailable, "the metadata leader changed while the change was in flight; it may or may not be applied: check, then retry")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return errs.New(errs.Unavailable, "no majority of the cluster applied the change in time; it may still be applied: check, then retry")
	}
	return err
}

// Close stops the node's raft groups and closes its peer connections.
func (n *Node) Close() error {
	select {
	case <-n.stop:
		return nil
	default:
	}
	close(n.stop)
	n.wg.Wait()
	n.rafts.Close()
	return n.transport.Close()
}

func memberIDs(m map[uint64]string) []uint64 {
	ids := make([]uint64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	return ids
}
