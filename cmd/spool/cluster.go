package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolmq/spool/client"
)

func newClusterCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Inspect the cluster a server belongs to",
	}
	cmd.AddCommand(newClusterStatusCmd(), newClusterAddNodeCmd(), newClusterRemoveNodeCmd(), newClusterTransferCmd())
	return cmd
}

func newClusterStatusCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the nodes, raft groups, terms, indexes and follower lag, as the server sees them",
		Long: "Show the cluster as the server (--server) sees it: every node with its connection and\n" +
			"when it was last heard from, and each raft group this node belongs to with its role,\n" +
			"term, leader and indexes; on a group's leader, each member's progress and lag (entries\n" +
			"it lacks). Ask the leader of a group for its followers' lag.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, func(ctx context.Context, c *client.Client) error {
				st, err := c.ClusterStatus(ctx)
				if err != nil {
					return err
				}
				if output == "json" {
					return writeJSON(cmd.OutOrStdout(), newClusterJSON(st))
				}
				return printClusterStatus(cmd.OutOrStdout(), st)
			})
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func printClusterStatus(w io.Writer, st client.ClusterStatus) error {
	if !st.Enabled {
		_, err := fmt.Fprintln(w, "not a cluster: this server is a single node (see `spool serve --help`: --node-id, --peers)")
		return err
	}
	fmt.Fprintf(w, "cluster %s, answered by node %d\n", st.ClusterID, st.NodeID)
	if st.Coordinator != 0 {
		fmt.Fprintf(w, "subscriptions coordinated by node %d (%s)\n\n", st.Coordinator, orDash(st.CoordinatorAddr))
	} else {
		fmt.Fprintf(w, "subscriptions coordinated by no node right now (an election)\n\n")
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "NODE\tCLUSTER ADDR\tHTTP\tKAFKA\tVOTER\tCONNECTED\tLAST HEARD\tLEADS\tDROPPED")
	for _, n := range st.Nodes {
		heard := "never"
		switch {
		case n.ID == st.NodeID:
			heard = "-"
		case n.LastHeard >= 0:
			heard = n.LastHeard.Round(time.Millisecond).String() + " ago"
		}
		self := ""
		if n.ID == st.NodeID {
			self = " (this)"
		}
		fmt.Fprintf(tw, "%d%s\t%s\t%s\t%s\t%t\t%t\t%s\t%d\t%d\n", n.ID, self, n.ClusterAddr, orDash(n.HTTPAddr), orDash(n.KafkaAddr),
			n.Voter, n.Connected, heard, n.Leaders, n.Dropped)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, g := range st.Groups {
		fmt.Fprintf(w, "\ngroup %d (%s): %s, term %d, leader %d, commit %d, applied %d, last %d\n",
			g.Group, g.Name, g.Role, g.Term, g.Leader, g.CommitIndex, g.AppliedIndex, g.Last)
		if len(g.Followers) == 0 {
			continue
		}
		tw := newTable(w)
		fmt.Fprintln(tw, "  MEMBER\tMATCH\tNEXT\tSTATE\tLAG\tLEARNER")
		for _, p := range g.Followers {
			fmt.Fprintf(tw, "  %d\t%d\t%d\t%s\t%d\t%t\n", p.Node, p.Match, p.Next, p.State, p.Lag, p.Learner)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

type clusterJSON struct {
	Enabled   bool   `json:"enabled"`
	ClusterID string `json:"cluster_id,omitempty"`
	NodeID    uint64 `json:"node_id,omitempty"`
	// The subscription coordinator (0: none right now) and its address.
	Coordinator     uint64            `json:"coordinator,omitempty"`
	CoordinatorAddr string            `json:"coordinator_addr,omitempty"`
	Nodes           []clusterNodeJSON `json:"nodes,omitempty"`
	Groups          []raftGroupJSON   `json:"groups,omitempty"`
}

type clusterNodeJSON struct {
	ID          uint64 `json:"id"`
	ClusterAddr string `json:"cluster_addr"`
	Connected   bool   `json:"connected"`
	HTTPAddr    string `json:"http_addr"`
	KafkaAddr   string `json:"kafka_addr"`
	Voter       bool   `json:"voter"`
	LastHeardMs int64  `json:"last_heard_ms"` // -1: never; 0: the answering node
	Dropped     int64  `json:"dropped_messages"`
	Leaders     int    `json:"leaders"`
}

type raftGroupJSON struct {
	Group     uint64             `json:"group"`
	Name      string             `json:"name"`
	Role      string             `json:"role"`
	Term      uint64             `json:"term"`
	Leader    uint64             `json:"leader"`
	Commit    uint64             `json:"commit_index"`
	Applied   uint64             `json:"applied_index"`
	Last      uint64             `json:"last_index"`
	Followers []raftProgressJSON `json:"followers,omitempty"`
}

type raftProgressJSON struct {
	Node    uint64 `json:"node"`
	Match   uint64 `json:"match"`
	Next    uint64 `json:"next"`
	State   string `json:"state"`
	Lag     uint64 `json:"lag"`
	Learner bool   `json:"learner"`
}

func newClusterJSON(st client.ClusterStatus) clusterJSON {
	out := clusterJSON{Enabled: st.Enabled, ClusterID: st.ClusterID, NodeID: st.NodeID,
		Coordinator: st.Coordinator, CoordinatorAddr: st.CoordinatorAddr}
	for _, n := range st.Nodes {
		heard := int64(-1)
		if n.LastHeard >= 0 {
			heard = n.LastHeard.Milliseconds()
		}
		out.Nodes = append(out.Nodes, clusterNodeJSON{ID: n.ID, ClusterAddr: n.ClusterAddr, Connected: n.Connected,
			LastHeardMs: heard, Dropped: n.Dropped, Leaders: n.Leaders, HTTPAddr: n.HTTPAddr, KafkaAddr: n.KafkaAddr, Voter: n.Voter})
	}
	for _, g := range st.Groups {
		gj := raftGroupJSON{Group: g.Group, Name: g.Name, Role: g.Role, Term: g.Term, Leader: g.Leader,
			Commit: g.CommitIndex, Applied: g.AppliedIndex, Last: g.Last}
		for _, p := range g.Followers {
			gj.Followers = append(gj.Followers, raftProgressJSON{Node: p.Node, Match: p.Match, Next: p.Next, State: p.State, Lag: p.Lag, Learner: p.Learner})
		}
		out.Groups = append(out.Groups, gj)
	}
	return out
}

func parseNodeID(cmd *cobra.Command, s string) (uint64, error) {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		return 0, usageErrorf(cmd, "node id %q: want a number above 0", s)
	}
	return id, nil
}

func newClusterAddNodeCmd() *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:   "add-node ID --cluster-addr HOST:PORT",
		Short: "Add a node to the cluster (a learner until it has caught up, then a voter)",
		Long: "Add node ID, which will listen for its peers at --cluster-addr, to the cluster of the\n" +
			"server (--server). Then start the new node with the flags printed, an empty data\n" +
			"directory and its own --http and --kafka addresses. It receives the cluster's log as a\n" +
			"learner and becomes a voter once it has caught up. One membership change at a time.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseNodeID(cmd, args[0])
			if err != nil {
				return err
			}
			if addr == "" {
				return usageErrorf(cmd, "--cluster-addr is required")
			}
			return withClient(cmd, func(ctx context.Context, c *client.Client) error {
				clusterID, peers, err := c.AddNode(ctx, id, addr)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "added node %d as a learner; start it with:\n", id)
				fmt.Fprintf(cmd.OutOrStdout(), "spool serve --node-id %d --join --cluster-id %s --peers %s --cluster-addr %s\n", id, clusterID, peers, addr)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&addr, "cluster-addr", "", "where the new node will listen for its peers")
	return cmd
}

func newClusterRemoveNodeCmd() *cobra.Command {
	return newClusterNodeCmd("remove-node ID", "Remove a node from the cluster for good (its id and data directory never rejoin)",
		func(ctx context.Context, c *client.Client, id uint64) (string, error) {
			return fmt.Sprintf("removed node %d", id), c.RemoveNode(ctx, id)
		})
}

func newClusterTransferCmd() *cobra.Command {
	return newClusterNodeCmd("transfer-leadership ID", "Move the leadership of the cluster's metadata group to node ID",
		func(ctx context.Context, c *client.Client, id uint64) (string, error) {
			return fmt.Sprintf("node %d leads the metadata group", id), c.TransferLeadership(ctx, id)
		})
}

// newClusterNodeCmd is a command acting on one node id: do's message is
// printed when it succeeds.
func newClusterNodeCmd(use, short string, do func(ctx context.Context, c *client.Client, id uint64) (string, error)) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseNodeID(cmd, args[0])
			if err != nil {
				return err
			}
			return withClient(cmd, func(ctx context.Context, c *client.Client) error {
				msg, err := do(ctx, c, id)
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.ErrOrStderr(), msg)
				return nil
			})
		},
	}
}
