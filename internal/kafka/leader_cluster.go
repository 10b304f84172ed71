package kafka

// On a cluster each partition is led by one node, its raft group's leader,
// which Metadata names. Fetch, ListOffsets and OffsetForLeaderEpoch sent
// to another node are
// answered NOT_LEADER_OR_FOLLOWER, as Kafka's followers answer clients,
// with the leader this node knows as a hint (Fetch v12+, KIP-951): the
// client refreshes its metadata and goes to the leader, instead of reading
// a replica that may lag it (or, cut off from the others, stand still).
// Produce on a non-leader is refused by the broker (LEADER_NOT_AVAILABLE).

// notLeader reports whether this node is a cluster node that does not lead
// partition p of the topic with this id, and the leader it knows (-1:
// none). A single node leads every partition.
func (s *Server) notLeader(topicID string, p int32) (bool, int32) {
	c := s.cfg.Cluster
	if c == nil {
		return false, s.cfg.NodeID
	}
	lead, _, _ := c.PartitionLeader(topicID, p)
	if lead == s.cfg.NodeID {
		return false, lead
	}
	if lead <= 0 {
		lead = -1
	}
	return true, lead
}

// notLeaderOf is notLeader for a topic named by name (false if there is no
// such topic).
func (s *Server) notLeaderOf(topic string, p int32) bool {
	if s.cfg.Cluster == nil {
		return false
	}
	meta, ok := s.b.Topic(topic)
	if !ok {
		return false
	}
	not, _ := s.notLeader(meta.ID, p)
	return not
}

// brokerEndpoint returns node id's Kafka address, false if not known.
func (s *Server) brokerEndpoint(id int32) (Broker, bool) {
	if c := s.cfg.Cluster; c != nil && id > 0 {
		for _, b := range c.Brokers() {
			if b.NodeID == id {
				return b, true
			}
		}
	}
	return Broker{}, false
}
