package vfs_test

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/spoolmq/spool/internal/vfs"
)

// saveMeta is a stand-in for Spool storage code under test.
func saveMeta(fs vfs.FS) error {
	if err := fs.MkdirAll("/db", 0o755); err != nil {
		return err
	}
	if err := vfs.SyncDir(fs, "/"); err != nil {
		return err
	}
	return vfs.WriteFileAtomic(fs, "/db", "/db/meta", []byte("v1"))
}

// An operation-index sweep: fail each operation in turn until the workload
// runs clean, checking every failure surfaces and leaves a recoverable state.
func ExampleOnIndex() {
	for i := int64(0); ; i++ {
		inj := vfs.OnIndex(i)
		mem := vfs.NewMemFS()
		err := saveMeta(vfs.NewErrorFS(mem, inj))
		if !inj.Fired() {
			fmt.Printf("clean run after %d operations: %v\n", inj.Seen(), err)
			break
		}
		if !errors.Is(err, vfs.ErrInjected) {
			fmt.Println("failure swallowed at", i)
		}
		// After a crash the file is absent or complete, never partial.
		if b, err := readFile(mem.CrashClone(vfs.CrashOptions{}), "/db/meta"); err == nil && string(b) != "v1" {
			fmt.Printf("op %d: torn meta %q\n", i, b)
		}
	}
	// Output: clean run after 12 operations: <nil>
}

// A crash that keeps a random part of the unsynced writes.
func ExampleMemFS_CrashClone() {
	fs := vfs.NewMemFS()
	f, _ := fs.Create("/log")
	_ = vfs.SyncDir(fs, "/")
	f.Write([]byte("synced."))
	f.Sync()
	f.Write([]byte("lost?"))
	after := fs.CrashClone(vfs.CrashOptions{})
	b, _ := readFile(after, "/log")
	fmt.Printf("%q\n", b)
	rnd := fs.CrashClone(vfs.CrashOptions{Rand: rand.New(rand.NewPCG(1, 2)), TearLastWrite: true})
	b, _ = readFile(rnd, "/log")
	fmt.Println(len(b) >= len("synced."))
	// Output:
	// "synced."
	// true
}

func readFile(fs vfs.FS, name string) ([]byte, error) {
	f, err := fs.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	b := make([]byte, fi.Size())
	_, err = f.ReadAt(b, 0)
	return b, err
}
