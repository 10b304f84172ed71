package e2e

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
)

// TestClusterSchemaRegistry: registrations, settings and deletes made
// through any node are the same on every node; a node that was down when
// they were made has them after it restarts; the ids stay the same.
func TestClusterSchemaRegistry(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := make([]*sr.Client, 3)
	for i := range cl {
		var err error
		if cl[i], err = sr.NewClient(sr.URLs("http://" + c.node(i+1).registry)); err != nil {
			t.Fatal(err)
		}
	}
	schema := func(n int) sr.Schema {
		return sr.Schema{Schema: fmt.Sprintf(`{"type":"record","name":"E","fields":[{"name":"f%d","type":"long","default":0}]}`, n)}
	}
	retry := func(what string, f func() error) {
		t.Helper()
		waitFor(t, 30*time.Second, what, f)
	}
	var ids []int
	for i := range 3 {
		retry(fmt.Sprintf("register through node %d", i+1), func() error {
			ss, err := cl[i].CreateSchema(ctx, "events-value", schema(i))
			if err == nil {
				ids = append(ids, ss.ID)
			}
			return err
		})
	}
	if !slices.Equal(ids, []int{1, 2, 3}) {
		t.Fatalf("ids %v", ids)
	}
	retry("set a level through node 3", func() error {
		return errors.Join(resultsErr(cl[2].SetCompatibility(ctx, sr.SetCompatibility{Level: sr.CompatFull}, "events-value"))...)
	})
	same := func(nodes ...int) {
		t.Helper()
		for _, n := range nodes {
			retry(fmt.Sprintf("node %d has every change", n), func() error {
				vs, err := cl[n-1].SubjectVersions(ctx, "events-value")
				if err != nil {
					return err
				}
				if !slices.Equal(vs, []int{1, 2, 3, 4}[:len(ids)]) {
					return fmt.Errorf("versions %v", vs)
				}
				for v, id := range ids {
					ss, err := cl[n-1].SchemaByVersion(ctx, "events-value", v+1)
					if err != nil || ss.ID != id {
						return fmt.Errorf("version %d: %+v, %v", v+1, ss, err)
					}
				}
				if r := cl[n-1].Compatibility(ctx, "events-value"); r[0].Err != nil || r[0].Level != sr.CompatFull {
					return fmt.Errorf("level %+v", r[0])
				}
				return nil
			})
		}
	}
	same(1, 2, 3)

	// A node down while a version is registered has it after its restart.
	c.stop(1)
	retry("register with node 1 down", func() error {
		ss, err := cl[1].CreateSchema(ctx, "events-value", schema(3))
		if err == nil && len(ids) == 3 {
			ids = append(ids, ss.ID)
		}
		return err
	})
	c.start(1)
	same(1, 2, 3)
	if ids[3] != 4 {
		t.Fatalf("the id registered with node 1 down: %d", ids[3])
	}
}

func resultsErr(rs []sr.CompatibilityResult) []error {
	var out []error
	for _, r := range rs {
		out = append(out, r.Err)
	}
	return out
}
