package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spoolmq/spool/internal/peer"
	"github.com/spoolmq/spool/internal/vfs"
)

// identityFile is the file in the data directory that ties it to one
// cluster and one node id (docs/format/cluster.md).
const identityFile = "cluster"

// Identity is what a node's data directory belongs to.
type Identity struct {
	Cluster peer.ClusterID
	Node    uint64
}

type identityJSON struct {
	Version int    `json:"version"`
	Cluster string `json:"cluster"`
	Node    uint64 `json:"node"`
}

// DeriveClusterID is the id of a cluster bootstrapped with these initial
// members (id → cluster address): every node started with the same
// --peers derives the same id, and clusters with other members or
// addresses get other ids.
func DeriveClusterID(peers map[uint64]string) peer.ClusterID {
	ids := make([]uint64, 0, len(peers))
	for id := range peers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var sb strings.Builder
	sb.WriteString("spool cluster\x00")
	for _, id := range ids {
		sb.WriteString(strconv.FormatUint(id, 10) + "=" + peers[id] + ",")
	}
	sum := sha256.Sum256([]byte(sb.String()))
	var c peer.ClusterID
	copy(c[:], sum[:])
	return c
}

// ParseClusterID parses a cluster id as printed (32 hex digits).
func ParseClusterID(s string) (peer.ClusterID, error) {
	var c peer.ClusterID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(c) {
		return c, fmt.Errorf("cluster id %q: want 32 hex digits", s)
	}
	copy(c[:], b)
	return c, nil
}

// LoadIdentity reads the data directory's identity; ok is false when it
// has none (a directory never used by a cluster node).
func LoadIdentity(fs vfs.FS, dir string) (id Identity, ok bool, err error) {
	f, err := fs.Open(filepath.Join(dir, identityFile))
	if errors.Is(err, os.ErrNotExist) {
		return Identity{}, false, nil
	}
	if err != nil {
		return Identity{}, false, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return Identity{}, false, err
	}
	var j identityJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return Identity{}, false, fmt.Errorf("%s: %w", filepath.Join(dir, identityFile), err)
	}
	if j.Version != 1 {
		return Identity{}, false, fmt.Errorf("%s: version %d is not known to this build", filepath.Join(dir, identityFile), j.Version)
	}
	c, err := ParseClusterID(j.Cluster)
	if err != nil {
		return Identity{}, false, fmt.Errorf("%s: %w", filepath.Join(dir, identityFile), err)
	}
	if j.Node == 0 {
		return Identity{}, false, fmt.Errorf("%s: node id 0", filepath.Join(dir, identityFile))
	}
	return Identity{Cluster: c, Node: j.Node}, true, nil
}

// ClaimIdentity ties the data directory to want, once: a directory that
// already belongs to another cluster or node id is refused, and so is one
// that holds data of a single node (hasData) but no identity, since its
// topics were never part of the cluster's catalog.
func ClaimIdentity(fs vfs.FS, dir string, want Identity, hasData bool) error {
	cur, ok, err := LoadIdentity(fs, dir)
	if err != nil {
		return err
	}
	if ok {
		switch {
		case cur.Cluster != want.Cluster:
			return fmt.Errorf("data directory %s belongs to cluster %x, not %x (started with other --peers or --cluster-id?); a node never joins another cluster with its data", dir, cur.Cluster, want.Cluster)
		case cur.Node != want.Node:
			return fmt.Errorf("data directory %s belongs to node %d, not %d; node ids are never reused or changed", dir, cur.Node, want.Node)
		}
		return nil
	}
	if hasData {
		return fmt.Errorf("data directory %s holds the data of a single node; a cluster node starts from an empty directory", dir)
	}
	data, err := json.Marshal(identityJSON{Version: 1, Cluster: hex.EncodeToString(want.Cluster[:]), Node: want.Node})
	if err != nil {
		return err
	}
	return vfs.WriteFileAtomic(fs, dir, filepath.Join(dir, identityFile), append(data, '\n'))
}
