package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"sort"
	"strconv"
	"strings"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/cluster"
	"github.com/spoolmq/spool/internal/kafka"
)

// ClusterConfig makes the server a node of a cluster (the cluster section
// of the configuration file; docs/cluster.md). Unset (NodeID 0, no Peers):
// a single node, as without it.
type ClusterConfig struct {
	// NodeID is this node's id (cluster.node-id), > 0, never reused.
	NodeID uint64 `yaml:"node-id"`
	// Addr is where this node listens for its peers (cluster.addr);
	// default this node's address in Peers.
	Addr string `yaml:"addr"`
	// Peers are the cluster's initial nodes, this one among them
	// (cluster.peers): "1=host:port,2=host:port,3=host:port", each the
	// node's cluster address. Every node of a new cluster is started with
	// the same list, from which the cluster's id is derived.
	Peers string `yaml:"peers"`
	// ID is the cluster's id (cluster.id), 32 hex digits; default derived
	// from Peers.
	ID string `yaml:"id"`
	// Join (cluster.join): this node is being added to a running cluster
	// (after `spool cluster add-node`) and waits for its leader instead of
	// starting a new cluster; give ID too.
	Join bool `yaml:"join"`
}

// Enabled reports whether the server is a cluster node.
func (c ClusterConfig) Enabled() bool { return c.NodeID != 0 || c.Peers != "" }

// ParsePeers parses a peers list: "1=host:port,2=host:port".
func ParsePeers(s string) (map[uint64]string, error) {
	out := map[uint64]string{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		idStr, addr, ok := strings.Cut(item, "=")
		id, err := strconv.ParseUint(idStr, 10, 64)
		if !ok || err != nil || id == 0 {
			return nil, fmt.Errorf("peer %q: want ID=HOST:PORT with an id above 0", item)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("peer %q: %v", item, err)
		}
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("peer id %d is listed twice", id)
		}
		out[id] = addr
	}
	if len(out) == 0 {
		return nil, errors.New("no peers listed")
	}
	return out, nil
}

// check completes and checks the cluster settings.
func (c *ClusterConfig) check() []error {
	if !c.Enabled() {
		return nil
	}
	var errList []error
	peers, err := ParsePeers(c.Peers)
	if err != nil {
		return []error{fmt.Errorf("server: cluster.peers: %v", err)}
	}
	if c.NodeID == 0 || c.NodeID > math.MaxInt32 {
		return []error{errors.New("server: cluster.node-id must be set, from 1 to 2147483647 (Kafka's broker ids are 32-bit)")}
	}
	own, ok := peers[c.NodeID]
	if !ok {
		errList = append(errList, fmt.Errorf("server: cluster.peers does not list this node (%d)", c.NodeID))
	}
	if len(peers)%2 == 0 && !c.Join {
		errList = append(errList, fmt.Errorf("server: cluster.peers lists %d nodes; a cluster has an odd number (3 or 5) so that a majority survives", len(peers)))
	}
	if c.Addr == "" {
		c.Addr = own
	}
	if err := checkAddr("cluster", c.Addr); err != nil {
		errList = append(errList, err)
	}
	if c.ID != "" {
		if _, err := cluster.ParseClusterID(c.ID); err != nil {
			errList = append(errList, fmt.Errorf("server: cluster.id: %v", err))
		}
	} else if c.Join {
		errList = append(errList, errors.New("server: cluster.join needs cluster.id (spool cluster add-node prints it)"))
	}
	return errList
}

// startCluster makes this server a cluster node, before its broker opens
// and after its state store does; hadState: the store existed before.
func (s *Server) startCluster(hadState bool) error {
	c := s.cfg.Cluster
	peers, _ := ParsePeers(c.Peers) // checked by complete
	id := cluster.Identity{Cluster: cluster.DeriveClusterID(peers), Node: c.NodeID}
	if c.ID != "" {
		id.Cluster, _ = cluster.ParseClusterID(c.ID)
	}
	if err := cluster.ClaimIdentity(s.fs, s.cfg.DataDir, id, hadState); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	ln, err := listen("cluster", c.Addr, 64)
	if err != nil {
		return err
	}
	var dial func(context.Context, string) (net.Conn, error)
	if s.tls != nil {
		// Mutual TLS between nodes: each presents its certificate, verified
		// against tls.ca-file (docs/cluster.md, "TLS").
		ln = tls.NewListener(ln, s.tls.PeerServerConfig())
		dial = s.dialPeer
	}
	n, err := cluster.New(cluster.Config{Identity: id, Listener: ln, Members: peers, State: s.st, Logger: s.logger, Join: c.Join, Dial: dial})
	if err != nil {
		ln.Close()
		return err
	}
	s.node = n
	ids := make([]uint64, 0, len(peers))
	for p := range peers {
		ids = append(ids, p)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	s.logger.Info("cluster node", "node", c.NodeID, "cluster", fmt.Sprintf("%x", id.Cluster), "addr", ln.Addr().String(), "members", ids)
	return nil
}

// kafkaView tells the Kafka front end's Metadata about the cluster.
type kafkaView struct {
	n      *cluster.Node
	self   uint64
	b      *broker.Broker
	logger *slog.Logger
}

func (v kafkaView) Brokers() []kafka.Broker {
	reg, err := v.n.Registry()
	if err != nil {
		v.logger.Error("reading the cluster's node registry", "err", err)
		return nil
	}
	var out []kafka.Broker
	for _, ni := range reg {
		if ni.Removed || ni.KafkaAddr == "" || ni.ID > math.MaxInt32 {
			continue
		}
		host, portStr, err := net.SplitHostPort(ni.KafkaAddr)
		port, perr := strconv.ParseInt(portStr, 10, 32)
		if err != nil || perr != nil {
			continue
		}
		out = append(out, kafka.Broker{NodeID: int32(ni.ID), Host: host, Port: int32(port)})
	}
	return out
}

func (v kafkaView) PartitionLeader(topicID string, p int32) (leader, epoch int32, replicas []int32) {
	lead, term := v.n.PartitionLeader(topicID, p)
	voters, _, _ := v.n.PartitionGroupReplicas(topicID, p)
	if len(voters) == 0 {
		// The group has not started here yet (a topic just created).
		voters, _ = v.n.Members()
	}
	return int32(lead), int32(min(term, math.MaxInt32)), int32s(voters)
}

func (v kafkaView) PartitionISR(topicID string, p int32) (isr, offline []int32) {
	pr := v.n.PartitionReplicas(topicID, p)
	if len(pr.Voters) == 0 {
		_, _, replicas := v.PartitionLeader(topicID, p)
		return replicas, nil
	}
	return int32s(pr.InSync), int32s(pr.Offline)
}

func (v kafkaView) Nodes() int {
	members, _ := v.n.Members()
	return len(members)
}

// int32s returns node ids as Kafka broker ids.
func int32s(ids []uint64) []int32 {
	out := make([]int32, 0, len(ids))
	for _, id := range ids {
		out = append(out, int32(id))
	}
	return out
}

// Controller is the metadata leader, which coordinates every group — but
// for the moment after it is elected and before it has applied what its
// predecessors committed (their groups' commits among it), and while it
// has not heard from a majority lately (cut off, it may already have been
// replaced): then -1, so that group requests are answered as by a cluster
// with no coordinator yet (retriable), not from state that is behind.
func (v kafkaView) Controller() int32 {
	lead := v.n.MetaLeader()
	if lead == v.self && (v.b.CoordinatorTerm() == 0 || !v.n.InQuorumContact()) {
		return -1
	}
	return int32(lead)
}

func (v kafkaView) ReplicationFactor() int32 {
	members, _ := v.n.Members()
	return catalog.DefaultReplicationFactor(len(members))
}

// kafkaNodeID is the broker id Kafka clients see: the node id on a
// cluster, 0 on a single node.
func (s *Server) kafkaNodeID() int32 {
	if s.node == nil {
		return 0
	}
	return int32(s.cfg.Cluster.NodeID)
}

func (s *Server) kafkaCluster() kafka.ClusterView {
	if s.node == nil {
		return nil
	}
	return kafkaView{n: s.node, self: s.cfg.Cluster.NodeID, b: s.broker, logger: s.logger}
}

// dialPeer connects to another node with TLS, verifying its certificate
// for the host of addr.
func (s *Server) dialPeer(ctx context.Context, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	d := tls.Dialer{Config: s.tls.PeerClientConfig(host)}
	return d.DialContext(ctx, "tcp", addr)
}
