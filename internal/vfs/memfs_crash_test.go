package vfs

import (
	"bytes"
	"errors"
	"fmt"
	iofs "io/fs"
	"math/rand/v2"
	"strings"
	"testing"
)

// syncedFile creates name holding s, syncs it and closes it. The directory
// is not synced.
func syncedFile(t *testing.T, fs FS, name, s string) {
	t.Helper()
	f := mustCreate(t, fs, name)
	mustWrite(t, f, s)
	check(t, f.Sync())
	check(t, f.Close())
}

func mustSyncDir(t *testing.T, fs FS, dir string) {
	t.Helper()
	check(t, SyncDir(fs, dir))
}

// wantContent fails unless name exists in fs holding s.
func wantContent(t *testing.T, fs *MemFS, name, s string) {
	t.Helper()
	got, err := readFile(fs, name)
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, fs)
	}
	if string(got) != s {
		t.Fatalf("%s holds %q, want %q\n%s", name, got, s, fs)
	}
}

// wantMissing fails unless name is absent from fs.
func wantMissing(t *testing.T, fs *MemFS, name string) {
	t.Helper()
	if _, err := fs.Stat(name); !errors.Is(err, iofs.ErrNotExist) {
		t.Fatalf("%s: Stat err = %v, want not-exist\n%s", name, err, fs)
	}
}

func TestMemFSCrashFileInUnsyncedDir(t *testing.T) {
	fs := NewMemFS()
	check(t, fs.MkdirAll("/d", 0o755))
	mustSyncDir(t, fs, "/")
	syncedFile(t, fs, "/d/f", "data")

	c := fs.CrashClone(CrashOptions{})
	wantMissing(t, c, "/d/f")
	if fi, err := c.Stat("/d"); err != nil || !fi.IsDir() {
		t.Fatalf("/d: %v\n%s", err, c)
	}

	mustSyncDir(t, fs, "/d")
	wantContent(t, fs.CrashClone(CrashOptions{}), "/d/f", "data")
}

func TestMemFSCrashMkdirAllNeedsParentSync(t *testing.T) {
	fs := NewMemFS()
	check(t, fs.MkdirAll("/a/b/c", 0o755))
	wantMissing(t, fs.CrashClone(CrashOptions{}), "/a")

	mustSyncDir(t, fs, "/")
	c := fs.CrashClone(CrashOptions{})
	if _, err := c.Stat("/a"); err != nil {
		t.Fatal(err)
	}
	wantMissing(t, c, "/a/b")

	mustSyncDir(t, fs, "/a")
	mustSyncDir(t, fs, "/a/b")
	if fi, err := fs.CrashClone(CrashOptions{}).Stat("/a/b/c"); err != nil || !fi.IsDir() {
		t.Fatalf("/a/b/c: %v", err)
	}
}

func TestMemFSCrashSyncedDirUnsyncedData(t *testing.T) {
	fs := NewMemFS()
	f := mustCreate(t, fs, "/f")
	mustWrite(t, f, "unsynced")
	mustSyncDir(t, fs, "/")
	wantContent(t, fs.CrashClone(CrashOptions{}), "/f", "")

	check(t, f.Sync())
	mustWrite(t, f, " more")
	check(t, f.Truncate(3))
	wantContent(t, fs.CrashClone(CrashOptions{}), "/f", "unsynced")
	check(t, f.Close())
	// Closing does not sync.
	wantContent(t, fs.CrashClone(CrashOptions{}), "/f", "unsynced")
}

func TestMemFSCrashCreateTruncateNotDurable(t *testing.T) {
	fs := NewMemFS()
	syncedFile(t, fs, "/f", "old")
	mustSyncDir(t, fs, "/")
	f := mustCreate(t, fs, "/f")
	mustWrite(t, f, "n")
	wantContent(t, fs.CrashClone(CrashOptions{}), "/f", "old")
	check(t, f.Sync())
	wantContent(t, fs.CrashClone(CrashOptions{}), "/f", "n")
	check(t, f.Close())
}

func TestMemFSCrashRenameNeedsDirSync(t *testing.T) {
	fs := NewMemFS()
	syncedFile(t, fs, "/meta", "v1")
	syncedFile(t, fs, "/meta.tmp", "v2")
	mustSyncDir(t, fs, "/")
	check(t, fs.Rename("/meta.tmp", "/meta"))
	wantContent(t, fs, "/meta", "v2")

	c := fs.CrashClone(CrashOptions{})
	wantContent(t, c, "/meta", "v1")
	wantContent(t, c, "/meta.tmp", "v2")

	mustSyncDir(t, fs, "/")
	c = fs.CrashClone(CrashOptions{})
	wantContent(t, c, "/meta", "v2")
	wantMissing(t, c, "/meta.tmp")
}

func TestMemFSCrashWriteFileAtomic(t *testing.T) {
	fs := NewMemFS()
	check(t, fs.MkdirAll("/db", 0o755))
	mustSyncDir(t, fs, "/")
	check(t, WriteFileAtomic(fs, "/db", "/db/meta", []byte("v1")))
	check(t, WriteFileAtomic(fs, "/db", "/db/meta", []byte("v2")))
	for seed := range uint64(20) {
		c := fs.CrashClone(CrashOptions{Rand: rand.New(rand.NewPCG(seed, 0)), TearLastWrite: true, Reorder: true})
		wantContent(t, c, "/db/meta", "v2")
	}
}

func TestMemFSCrashRemoveUndone(t *testing.T) {
	fs := NewMemFS()
	syncedFile(t, fs, "/f", "keep")
	check(t, fs.MkdirAll("/d/e", 0o755))
	syncedFile(t, fs, "/d/e/g", "deep")
	mustSyncDir(t, fs, "/")
	mustSyncDir(t, fs, "/d")
	mustSyncDir(t, fs, "/d/e")

	check(t, fs.Remove("/f"))
	check(t, fs.RemoveAll("/d"))
	wantMissing(t, fs, "/f")
	wantMissing(t, fs, "/d")
	c := fs.CrashClone(CrashOptions{})
	wantContent(t, c, "/f", "keep")
	wantContent(t, c, "/d/e/g", "deep")

	mustSyncDir(t, fs, "/")
	c = fs.CrashClone(CrashOptions{})
	wantMissing(t, c, "/f")
	wantMissing(t, c, "/d")
}

func TestMemFSCrashRemoveAllUnlinksChildren(t *testing.T) {
	// RemoveAll unlinks each entry from its own directory, so syncing a
	// handle on a removed directory makes its emptiness durable while the
	// unsynced parent still brings the directory itself back.
	fs := NewMemFS()
	check(t, fs.MkdirAll("/d", 0o755))
	syncedFile(t, fs, "/d/f", "x")
	mustSyncDir(t, fs, "/")
	mustSyncDir(t, fs, "/d")
	d, err := fs.OpenDir("/d")
	check(t, err)
	check(t, fs.RemoveAll("/d"))
	check(t, d.Sync())
	check(t, d.Close())
	c := fs.CrashClone(CrashOptions{})
	names, err := c.List("/d")
	check(t, err)
	if len(names) != 0 {
		t.Fatalf("/d holds %q after a crash\n%s", names, c)
	}
}

func TestMemFSCrashRemovedOpenFile(t *testing.T) {
	fs := NewMemFS()
	f := mustCreate(t, fs, "/f")
	mustWrite(t, f, "abc")
	check(t, f.Sync())
	mustSyncDir(t, fs, "/")
	check(t, fs.Remove("/f"))
	mustSyncDir(t, fs, "/")
	// The handle still works, but the file is gone for good.
	mustWrite(t, f, "def")
	check(t, f.Sync())
	buf := make([]byte, 6)
	if _, err := f.ReadAt(buf, 0); err != nil || string(buf) != "abcdef" {
		t.Fatalf("ReadAt = %q, %v", buf, err)
	}
	check(t, f.Close())
	wantMissing(t, fs.CrashClone(CrashOptions{}), "/f")
}

// crashOutcomes crashes fs with seeds 0..n-1 and returns how often each
// content of name was seen.
func crashOutcomes(t *testing.T, fs *MemFS, name string, n int, opts CrashOptions) map[string]int {
	t.Helper()
	seen := make(map[string]int)
	for seed := range uint64(n) {
		opts.Rand = rand.New(rand.NewPCG(seed, 1))
		got, err := readFile(fs.CrashClone(opts), name)
		check(t, err)
		seen[string(got)]++
	}
	return seen
}

func TestMemFSCrashRandomPrefix(t *testing.T) {
	fs := NewMemFS()
	f := mustCreate(t, fs, "/f")
	mustSyncDir(t, fs, "/")
	mustWrite(t, f, "aaaa")
	check(t, f.Sync())
	for _, s := range []string{"bbbb", "cccc", "dddd"} {
		mustWrite(t, f, s)
	}
	seen := crashOutcomes(t, fs, "/f", 400, CrashOptions{})
	want := []string{"aaaa", "aaaabbbb", "aaaabbbbcccc", "aaaabbbbccccdddd"}
	for _, w := range want {
		if seen[w] == 0 {
			t.Errorf("outcome %q never seen: %v", w, seen)
		}
		delete(seen, w)
	}
	if len(seen) > 0 {
		t.Errorf("outcomes that are not prefixes: %v", seen)
	}
}

func TestMemFSCrashTearLastWrite(t *testing.T) {
	fs := NewMemFS()
	f := mustCreate(t, fs, "/f")
	mustSyncDir(t, fs, "/")
	full := "0123456789abcdefghijklmnopqrstuv"
	for i := 0; i < len(full); i += 8 {
		mustWrite(t, f, full[i:i+8])
	}
	seen := crashOutcomes(t, fs, "/f", 400, CrashOptions{TearLastWrite: true})
	torn := 0
	for s := range seen {
		if !strings.HasPrefix(full, s) {
			t.Fatalf("outcome %q is not a prefix of %q", s, full)
		}
		if len(s)%8 != 0 {
			torn++
		}
	}
	if torn == 0 {
		t.Fatalf("no write was torn: %v", seen)
	}
	// Without TearLastWrite only whole writes land.
	for s := range crashOutcomes(t, fs, "/f", 100, CrashOptions{}) {
		if len(s)%8 != 0 {
			t.Fatalf("torn outcome %q without TearLastWrite", s)
		}
	}
}

func TestMemFSCrashReorder(t *testing.T) {
	fs := NewMemFS()
	f := mustCreate(t, fs, "/f")
	mustSyncDir(t, fs, "/")
	mustWrite(t, f, "AAAA")
	mustWrite(t, f, "BBBB")
	seen := crashOutcomes(t, fs, "/f", 400, CrashOptions{Reorder: true})
	want := []string{"", "AAAA", "\x00\x00\x00\x00BBBB", "AAAABBBB"}
	for _, w := range want {
		if seen[w] == 0 {
			t.Errorf("outcome %q never seen: %v", w, seen)
		}
		delete(seen, w)
	}
	if len(seen) > 0 {
		t.Errorf("unexpected outcomes: %v", seen)
	}
}

func TestMemFSCrashReorderTear(t *testing.T) {
	fs := NewMemFS()
	f := mustCreate(t, fs, "/f")
	mustSyncDir(t, fs, "/")
	var writes [][]byte
	for i := range 6 {
		w := bytes.Repeat([]byte{byte('a' + i)}, 5)
		writes = append(writes, w)
		if _, err := f.WriteAt(w, int64(i*5)); err != nil {
			t.Fatal(err)
		}
	}
	full := bytes.Join(writes, nil)
	for s := range crashOutcomes(t, fs, "/f", 300, CrashOptions{Reorder: true, TearLastWrite: true}) {
		// Every byte is either a zero or the byte written there.
		for i := range len(s) {
			if s[i] != 0 && s[i] != full[i] {
				t.Fatalf("outcome %q has byte %d = %q", s, i, s[i])
			}
		}
	}
}

func TestMemFSCrashSyncedContentIsSnapshot(t *testing.T) {
	// Writes, truncates and regrowth after a sync must not leak into the
	// synced content, even though the two share memory right after Sync.
	fs := NewMemFS()
	f := mustCreate(t, fs, "/f")
	mustSyncDir(t, fs, "/")
	mustWrite(t, f, "abcdefgh")
	check(t, f.Sync())
	if _, err := f.WriteAt([]byte("XY"), 2); err != nil {
		t.Fatal(err)
	}
	wantContent(t, fs.CrashClone(CrashOptions{}), "/f", "abcdefgh")
	check(t, f.Sync())
	check(t, f.Truncate(2))
	check(t, f.Truncate(6))
	wantContent(t, fs, "/f", "ab\x00\x00\x00\x00")
	wantContent(t, fs.CrashClone(CrashOptions{}), "/f", "abXYefgh")
	check(t, f.Sync())
	mustWrite(t, f, "tail")
	wantContent(t, fs.CrashClone(CrashOptions{}), "/f", "ab\x00\x00\x00\x00")
	check(t, f.Close())
}

func TestMemFSCrashCloneIndependent(t *testing.T) {
	fs := NewMemFS()
	syncedFile(t, fs, "/f", "abc")
	mustSyncDir(t, fs, "/")
	c := fs.CrashClone(CrashOptions{})

	g, err := c.OpenReadWrite("/f")
	check(t, err)
	if _, err := g.WriteAt([]byte("Z"), 0); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, g, "def")
	check(t, g.Close())
	syncedFile(t, c, "/new", "x")
	wantContent(t, c, "/f", "Zbcdef")
	wantContent(t, fs, "/f", "abc")
	wantMissing(t, fs, "/new")

	f, err := fs.OpenReadWrite("/f")
	check(t, err)
	mustWrite(t, f, "123")
	check(t, f.Sync())
	check(t, f.Close())
	wantContent(t, c, "/f", "Zbcdef")

	// The clone starts fully synced: crashing it again changes nothing
	// that was there when it was made.
	wantContent(t, c.CrashClone(CrashOptions{}), "/f", "abc")
	if st := c.Stats(); st.FileSyncs != 1 || st.Writes != 3 {
		t.Fatalf("clone stats %+v", st)
	}
}

func TestMemFSCrashDuplicateInode(t *testing.T) {
	// A rename synced in the target directory but not in the source one
	// leaves the inode reachable twice: it comes back as two independent
	// copies with equal content.
	fs := NewMemFS()
	check(t, fs.MkdirAll("/a", 0o755))
	check(t, fs.MkdirAll("/b", 0o755))
	mustSyncDir(t, fs, "/")
	f := mustCreate(t, fs, "/a/f")
	mustWrite(t, f, "synced")
	check(t, f.Sync())
	mustWrite(t, f, "+more+and+more")
	mustSyncDir(t, fs, "/a")
	check(t, fs.Rename("/a/f", "/b/f"))
	mustSyncDir(t, fs, "/b")
	check(t, f.Close())

	for seed := range uint64(20) {
		c := fs.CrashClone(CrashOptions{Rand: rand.New(rand.NewPCG(seed, 2)), TearLastWrite: true})
		a, err := readFile(c, "/a/f")
		check(t, err)
		b, err := readFile(c, "/b/f")
		check(t, err)
		if !bytes.Equal(a, b) || !bytes.HasPrefix(a, []byte("synced")) {
			t.Fatalf("seed %d: /a/f %q, /b/f %q", seed, a, b)
		}
		g, err := c.OpenReadWrite("/a/f")
		check(t, err)
		mustWrite(t, g, "!")
		check(t, g.Close())
		if b2, _ := readFile(c, "/b/f"); !bytes.Equal(b2, b) {
			t.Fatalf("write to /a/f changed /b/f to %q", b2)
		}
	}
}

func TestMemFSCrashDirectoryCycleCut(t *testing.T) {
	// Synced entries can describe a cycle: /a/b synced, then /a/b moved
	// to /b, and /a moved into /b with /b synced but never /a.
	fs := NewMemFS()
	check(t, fs.MkdirAll("/a/b", 0o755))
	mustSyncDir(t, fs, "/")
	mustSyncDir(t, fs, "/a")
	check(t, fs.Rename("/a/b", "/b"))
	mustSyncDir(t, fs, "/")
	check(t, fs.Rename("/a", "/b/a"))
	mustSyncDir(t, fs, "/b")
	c := fs.CrashClone(CrashOptions{})
	// Root synced as {a, b}; /a synced as {b}; /b synced as {a}.
	for _, p := range []string{"/a", "/a/b", "/b", "/b/a"} {
		if fi, err := c.Stat(p); err != nil || !fi.IsDir() {
			t.Fatalf("%s: %v\n%s", p, err, c)
		}
	}
	wantMissing(t, c, "/a/b/a")
	wantMissing(t, c, "/b/a/b")
}

func TestMemFSCrashDeterministic(t *testing.T) {
	fs := NewMemFS()
	check(t, fs.MkdirAll("/d", 0o755))
	mustSyncDir(t, fs, "/")
	mustSyncDir(t, fs, "/d")
	for i := range 5 {
		f := mustCreate(t, fs, fmt.Sprintf("/d/f%d", i))
		for j := range 5 {
			mustWrite(t, f, strings.Repeat(fmt.Sprint(j), i+1))
		}
		check(t, f.Close())
	}
	mustSyncDir(t, fs, "/d")
	opts := func() CrashOptions {
		return CrashOptions{Rand: rand.New(rand.NewPCG(7, 7)), Reorder: true, TearLastWrite: true}
	}
	a, b := fs.CrashClone(opts()).String(), fs.CrashClone(opts()).String()
	if a != b {
		t.Fatalf("same seed, different clones:\n%s\n%s", a, b)
	}
}

func TestMemFSCrashOptionsNeedRand(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("CrashClone with Reorder and no Rand did not panic")
		}
	}()
	NewMemFS().CrashClone(CrashOptions{Reorder: true})
}
