package vfs

import (
	"bytes"
	"errors"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// fsImpl makes a file system and a directory in it for one test.
type fsImpl struct {
	name string
	make func(t *testing.T) (FS, string)
}

func memRoot(t *testing.T, fs FS, root string) (FS, string) {
	t.Helper()
	if err := fs.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	return fs, root
}

var fsImpls = []fsImpl{
	{"os", func(t *testing.T) (FS, string) { return Default, t.TempDir() }},
	{"mem", func(t *testing.T) (FS, string) { return memRoot(t, NewMemFS(), "/data") }},
	{"mem-relative", func(t *testing.T) (FS, string) { return memRoot(t, NewMemFS(), "data/dir") }},
	{"error-mem", func(t *testing.T) (FS, string) {
		return memRoot(t, NewErrorFS(NewMemFS(), OnIndex(-1)), "/data")
	}},
	{"error-os", func(t *testing.T) (FS, string) { return NewErrorFS(Default, nil), t.TempDir() }},
}

// conformance holds behaviour every FS must share, run against every
// implementation by TestConformance.
var conformance = []struct {
	name string
	run  func(t *testing.T, fs FS, dir string)
}{
	{"CreateWriteRead", func(t *testing.T, fs FS, dir string) {
		name := filepath.Join(dir, "f")
		f := mustCreate(t, fs, name)
		mustWrite(t, f, "hello")
		mustWrite(t, f, " world")
		fi, err := f.Stat()
		check(t, err)
		if fi.Name() != "f" || fi.Size() != 11 || fi.IsDir() {
			t.Fatalf("File.Stat = %q size %d dir %v", fi.Name(), fi.Size(), fi.IsDir())
		}
		check(t, f.Close())
		if got := readAll(t, fs, name); got != "hello world" {
			t.Fatalf("content %q", got)
		}
		fi, err = fs.Stat(name)
		check(t, err)
		if fi.Name() != "f" || fi.Size() != 11 || fi.IsDir() || !fi.Mode().IsRegular() {
			t.Fatalf("FS.Stat = %q size %d mode %v", fi.Name(), fi.Size(), fi.Mode())
		}
	}},
	{"SequentialRead", func(t *testing.T, fs FS, dir string) {
		name := writeFile(t, fs, dir, "f", "abcdefg")
		f, err := fs.Open(name)
		check(t, err)
		defer f.Close()
		var got []byte
		buf := make([]byte, 3)
		for {
			n, err := f.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			check(t, err)
		}
		if string(got) != "abcdefg" {
			t.Fatalf("read %q", got)
		}
		if n, err := f.Read(buf); n != 0 || err != io.EOF {
			t.Fatalf("Read at end = %d, %v", n, err)
		}
	}},
	{"ReadAtEOF", func(t *testing.T, fs FS, dir string) {
		name := writeFile(t, fs, dir, "f", "abcdef")
		f, err := fs.Open(name)
		check(t, err)
		defer f.Close()
		buf := make([]byte, 4)
		if n, err := f.ReadAt(buf[:3], 0); n != 3 || err != nil || string(buf[:3]) != "abc" {
			t.Fatalf("ReadAt(3, 0) = %d, %v, %q", n, err, buf[:n])
		}
		if n, err := f.ReadAt(buf, 2); n != 4 || err != nil || string(buf) != "cdef" {
			t.Fatalf("ReadAt(4, 2) = %d, %v, %q", n, err, buf[:n])
		}
		if n, err := f.ReadAt(buf, 4); n != 2 || err != io.EOF || string(buf[:2]) != "ef" {
			t.Fatalf("ReadAt(4, 4) = %d, %v, %q", n, err, buf[:n])
		}
		for _, off := range []int64{6, 100} {
			if n, err := f.ReadAt(buf, off); n != 0 || err != io.EOF {
				t.Fatalf("ReadAt(4, %d) = %d, %v", off, n, err)
			}
		}
		if n, err := f.ReadAt(nil, 100); n != 0 || err != nil {
			t.Fatalf("ReadAt(nil, 100) = %d, %v", n, err)
		}
		if _, err := f.ReadAt(buf, -1); err == nil {
			t.Fatal("ReadAt at a negative offset succeeded")
		}
	}},
	{"CreateTruncates", func(t *testing.T, fs FS, dir string) {
		name := writeFile(t, fs, dir, "f", "old contents")
		f := mustCreate(t, fs, name)
		mustWrite(t, f, "new")
		check(t, f.Close())
		if got := readAll(t, fs, name); got != "new" {
			t.Fatalf("content %q", got)
		}
	}},
	{"OpenReadWriteAtEnd", func(t *testing.T, fs FS, dir string) {
		name := writeFile(t, fs, dir, "f", "abc")
		f, err := fs.OpenReadWrite(name)
		check(t, err)
		if n, err := f.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Fatalf("Read at end = %d, %v", n, err)
		}
		mustWrite(t, f, "def")
		if _, err := f.WriteAt([]byte("X"), 0); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 6)
		if _, err := f.ReadAt(buf, 0); err != nil || string(buf) != "Xbcdef" {
			t.Fatalf("ReadAt = %q, %v", buf, err)
		}
		check(t, f.Close())
		if got := readAll(t, fs, name); got != "Xbcdef" {
			t.Fatalf("content %q", got)
		}
	}},
	{"WriteAtGapIsZero", func(t *testing.T, fs FS, dir string) {
		f := mustCreate(t, fs, filepath.Join(dir, "f"))
		defer f.Close()
		if n, err := f.WriteAt([]byte("xy"), 5); n != 2 || err != nil {
			t.Fatalf("WriteAt = %d, %v", n, err)
		}
		buf := make([]byte, 7)
		if _, err := f.ReadAt(buf, 0); err != nil || string(buf) != "\x00\x00\x00\x00\x00xy" {
			t.Fatalf("ReadAt = %q, %v", buf, err)
		}
		// An empty write past the end does not extend the file.
		if n, err := f.WriteAt(nil, 20); n != 0 || err != nil {
			t.Fatalf("WriteAt(nil, 20) = %d, %v", n, err)
		}
		if fi, err := f.Stat(); err != nil || fi.Size() != 7 {
			t.Fatalf("Stat after empty WriteAt: %v, %v", fi, err)
		}
		// WriteAt does not move the position.
		mustWrite(t, f, "ab")
		if _, err := f.ReadAt(buf, 0); err != nil || string(buf) != "ab\x00\x00\x00xy" {
			t.Fatalf("ReadAt = %q, %v", buf, err)
		}
	}},
	{"Truncate", func(t *testing.T, fs FS, dir string) {
		f := mustCreate(t, fs, filepath.Join(dir, "f"))
		defer f.Close()
		mustWrite(t, f, "abcdef")
		check(t, f.Truncate(2))
		check(t, f.Truncate(4))
		buf := make([]byte, 5)
		n, err := f.ReadAt(buf, 0)
		if n != 4 || err != io.EOF || string(buf[:4]) != "ab\x00\x00" {
			t.Fatalf("ReadAt = %d, %v, %q", n, err, buf[:n])
		}
		fi, err := f.Stat()
		check(t, err)
		if fi.Size() != 4 {
			t.Fatalf("size %d", fi.Size())
		}
	}},
	{"Missing", func(t *testing.T, fs FS, dir string) {
		missing := filepath.Join(dir, "missing")
		inMissing := filepath.Join(missing, "f")
		notExist := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, iofs.ErrNotExist) {
				t.Errorf("%s: err = %v, want fs.ErrNotExist", what, err)
			}
		}
		_, err := fs.Open(missing)
		notExist("Open", err)
		_, err = fs.OpenReadWrite(missing)
		notExist("OpenReadWrite", err)
		_, err = fs.OpenDir(missing)
		notExist("OpenDir", err)
		_, err = fs.Create(inMissing)
		notExist("Create in missing dir", err)
		_, err = fs.Stat(missing)
		notExist("Stat", err)
		_, err = fs.List(missing)
		notExist("List", err)
		notExist("Remove", fs.Remove(missing))
		notExist("Rename", fs.Rename(missing, filepath.Join(dir, "x")))
		name := writeFile(t, fs, dir, "f", "x")
		notExist("Rename into missing dir", fs.Rename(name, inMissing))
		check(t, fs.RemoveAll(missing))
		check(t, fs.RemoveAll(inMissing))
	}},
	{"UnderAFile", func(t *testing.T, fs FS, dir string) {
		name := writeFile(t, fs, dir, "f", "x")
		below := filepath.Join(name, "g")
		notDir := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, syscall.ENOTDIR) {
				t.Errorf("%s: err = %v, want ENOTDIR", what, err)
			}
		}
		_, err := fs.Open(below)
		notDir("Open", err)
		_, err = fs.Create(below)
		notDir("Create", err)
		_, err = fs.List(name)
		notDir("List of a file", err)
		_, err = fs.OpenDir(name)
		notDir("OpenDir of a file", err)
		notDir("MkdirAll over a file", fs.MkdirAll(name, 0o755))
		notDir("MkdirAll below a file", fs.MkdirAll(below, 0o755))
		notDir("RemoveAll below a file", fs.RemoveAll(below))
	}},
	{"Directories", func(t *testing.T, fs FS, dir string) {
		sub := filepath.Join(dir, "a", "b")
		check(t, fs.MkdirAll(sub, 0o755))
		check(t, fs.MkdirAll(sub, 0o755))
		fi, err := fs.Stat(sub)
		check(t, err)
		if !fi.IsDir() || fi.Name() != "b" {
			t.Fatalf("Stat = %q dir %v", fi.Name(), fi.IsDir())
		}
		_, err = fs.Create(sub)
		if !errors.Is(err, syscall.EISDIR) {
			t.Errorf("Create of a directory: %v", err)
		}
		_, err = fs.OpenReadWrite(sub)
		if !errors.Is(err, syscall.EISDIR) {
			t.Errorf("OpenReadWrite of a directory: %v", err)
		}
		d, err := fs.Open(sub)
		check(t, err)
		if _, err := d.Read(make([]byte, 1)); !errors.Is(err, syscall.EISDIR) {
			t.Errorf("Read of a directory: %v", err)
		}
		check(t, d.Close())
		writeFile(t, fs, sub, "f", "x")
		if err := fs.Remove(sub); !errors.Is(err, syscall.ENOTEMPTY) {
			t.Errorf("Remove of a non-empty directory: %v", err)
		}
		check(t, fs.Remove(filepath.Join(sub, "f")))
		check(t, fs.Remove(sub))
		if _, err := fs.Stat(sub); !errors.Is(err, iofs.ErrNotExist) {
			t.Errorf("Stat after Remove: %v", err)
		}
		check(t, SyncDir(fs, dir))
	}},
	{"ListSorted", func(t *testing.T, fs FS, dir string) {
		for _, n := range []string{"c", "a", "b10", "b2"} {
			writeFile(t, fs, dir, n, n)
		}
		check(t, fs.MkdirAll(filepath.Join(dir, "d", "e"), 0o755))
		got, err := fs.List(dir)
		check(t, err)
		if want := []string{"a", "b10", "b2", "c", "d"}; !slices.Equal(got, want) {
			t.Fatalf("List = %q, want %q", got, want)
		}
		got, err = fs.List(filepath.Join(dir, "d", "e"))
		check(t, err)
		if len(got) != 0 {
			t.Fatalf("List of empty dir = %q", got)
		}
	}},
	{"RemoveAll", func(t *testing.T, fs FS, dir string) {
		tree := filepath.Join(dir, "t")
		check(t, fs.MkdirAll(filepath.Join(tree, "x", "y"), 0o755))
		writeFile(t, fs, filepath.Join(tree, "x"), "f", "1")
		writeFile(t, fs, filepath.Join(tree, "x", "y"), "g", "2")
		writeFile(t, fs, dir, "keep", "3")
		check(t, fs.RemoveAll(tree))
		got, err := fs.List(dir)
		check(t, err)
		if !slices.Equal(got, []string{"keep"}) {
			t.Fatalf("List = %q", got)
		}
		name := writeFile(t, fs, dir, "file", "x")
		check(t, fs.RemoveAll(name))
		if _, err := fs.Stat(name); !errors.Is(err, iofs.ErrNotExist) {
			t.Fatalf("Stat after RemoveAll: %v", err)
		}
	}},
	{"Rename", func(t *testing.T, fs FS, dir string) {
		a := writeFile(t, fs, dir, "a", "A")
		b := writeFile(t, fs, dir, "b", "B")
		check(t, fs.Rename(a, b))
		if got := readAll(t, fs, b); got != "A" {
			t.Fatalf("target holds %q", got)
		}
		if _, err := fs.Stat(a); !errors.Is(err, iofs.ErrNotExist) {
			t.Fatalf("old name: %v", err)
		}
		check(t, fs.Rename(b, b))
		if got := readAll(t, fs, b); got != "A" {
			t.Fatalf("after self-rename %q", got)
		}
		sub := filepath.Join(dir, "sub")
		check(t, fs.MkdirAll(sub, 0o755))
		c := filepath.Join(sub, "c")
		check(t, fs.Rename(b, c))
		if got := readAll(t, fs, c); got != "A" {
			t.Fatalf("moved file holds %q", got)
		}
		// A directory moves with its contents.
		sub2 := filepath.Join(dir, "sub2")
		check(t, fs.Rename(sub, sub2))
		if got := readAll(t, fs, filepath.Join(sub2, "c")); got != "A" {
			t.Fatalf("file in moved dir holds %q", got)
		}
	}},
	{"RenameErrors", func(t *testing.T, fs FS, dir string) {
		f := writeFile(t, fs, dir, "f", "x")
		d := filepath.Join(dir, "d")
		e := filepath.Join(dir, "e")
		check(t, fs.MkdirAll(d, 0o755))
		check(t, fs.MkdirAll(e, 0o755))
		if err := fs.Rename(f, d); !errors.Is(err, syscall.EEXIST) {
			t.Errorf("file onto dir: %v", err)
		}
		if err := fs.Rename(d, e); !errors.Is(err, syscall.EEXIST) {
			t.Errorf("dir onto empty dir: %v", err)
		}
		if err := fs.Rename(d, f); !errors.Is(err, syscall.ENOTDIR) {
			t.Errorf("dir onto file: %v", err)
		}
		if err := fs.Rename(d, filepath.Join(d, "x")); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("dir into itself: %v", err)
		}
		var le *os.LinkError
		if err := fs.Rename(f, d); !errors.As(err, &le) || le.Op != "rename" {
			t.Errorf("error type %T", err)
		}
	}},
	{"ReadOnlyHandle", func(t *testing.T, fs FS, dir string) {
		name := writeFile(t, fs, dir, "f", "abc")
		f, err := fs.Open(name)
		check(t, err)
		defer f.Close()
		if _, err := f.Write([]byte("x")); err == nil {
			t.Error("Write on a read-only handle succeeded")
		}
		if _, err := f.WriteAt([]byte("x"), 0); err == nil {
			t.Error("WriteAt on a read-only handle succeeded")
		}
		if err := f.Truncate(0); err == nil {
			t.Error("Truncate on a read-only handle succeeded")
		}
		check(t, f.Sync())
		if got := readAll(t, fs, name); got != "abc" {
			t.Fatalf("content %q", got)
		}
	}},
	{"Closed", func(t *testing.T, fs FS, dir string) {
		f := mustCreate(t, fs, filepath.Join(dir, "f"))
		mustWrite(t, f, "abc")
		check(t, f.Close())
		closed := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, iofs.ErrClosed) {
				t.Errorf("%s on closed file: %v, want fs.ErrClosed", what, err)
			}
		}
		_, err := f.Read(make([]byte, 1))
		closed("Read", err)
		_, err = f.ReadAt(make([]byte, 1), 0)
		closed("ReadAt", err)
		_, err = f.Write([]byte("x"))
		closed("Write", err)
		_, err = f.WriteAt([]byte("x"), 0)
		closed("WriteAt", err)
		closed("Sync", f.Sync())
		closed("Truncate", f.Truncate(0))
		_, err = f.Stat()
		closed("Stat", err)
		closed("Close", f.Close())
		d, err := fs.OpenDir(dir)
		check(t, err)
		check(t, d.Close())
		closed("Sync of dir", d.Sync())
	}},
	{"RemovedWhileOpen", func(t *testing.T, fs FS, dir string) {
		name := filepath.Join(dir, "f")
		f := mustCreate(t, fs, name)
		defer f.Close()
		mustWrite(t, f, "abc")
		check(t, fs.Remove(name))
		if _, err := fs.Stat(name); !errors.Is(err, iofs.ErrNotExist) {
			t.Fatalf("Stat after Remove: %v", err)
		}
		mustWrite(t, f, "def")
		buf := make([]byte, 6)
		if _, err := f.ReadAt(buf, 0); err != nil || string(buf) != "abcdef" {
			t.Fatalf("ReadAt = %q, %v", buf, err)
		}
		check(t, f.Sync())
		// A new file under the same name is a different file.
		g := mustCreate(t, fs, name)
		mustWrite(t, g, "new")
		check(t, g.Close())
		if _, err := f.ReadAt(buf, 0); err != nil || string(buf) != "abcdef" {
			t.Fatalf("ReadAt after re-create = %q, %v", buf, err)
		}
	}},
	{"WriteFileAtomic", func(t *testing.T, fs FS, dir string) {
		name := writeFile(t, fs, dir, "meta", "v1")
		check(t, WriteFileAtomic(fs, dir, name, []byte("v2")))
		if got := readAll(t, fs, name); got != "v2" {
			t.Fatalf("content %q", got)
		}
		got, err := fs.List(dir)
		check(t, err)
		if !slices.Equal(got, []string{"meta"}) {
			t.Fatalf("List = %q", got)
		}
	}},
}

func TestConformance(t *testing.T) {
	for _, impl := range fsImpls {
		t.Run(impl.name, func(t *testing.T) {
			for _, c := range conformance {
				t.Run(c.name, func(t *testing.T) {
					fs, dir := impl.make(t)
					c.run(t, fs, dir)
				})
			}
		})
	}
}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustCreate(t testing.TB, fs FS, name string) File {
	t.Helper()
	f, err := fs.Create(name)
	check(t, err)
	return f
}

func mustWrite(t testing.TB, f File, s string) {
	t.Helper()
	n, err := f.Write([]byte(s))
	if err != nil || n != len(s) {
		t.Fatalf("Write(%q) = %d, %v", s, n, err)
	}
}

// writeFile creates dir/name holding s and returns its path. Neither the
// file nor the directory is synced.
func writeFile(t testing.TB, fs FS, dir, name, s string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	f := mustCreate(t, fs, p)
	mustWrite(t, f, s)
	check(t, f.Close())
	return p
}

func readAll(t testing.TB, fs FS, name string) string {
	t.Helper()
	f, err := fs.Open(name)
	check(t, err)
	defer f.Close()
	b, err := io.ReadAll(f)
	check(t, err)
	return string(b)
}

// readFile is readAll returning the error instead of failing.
func readFile(fs FS, name string) ([]byte, error) {
	f, err := fs.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	_, err = io.Copy(&buf, f)
	return buf.Bytes(), err
}
