package vfs

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
)

// recorder is an Injector that records every operation and fails none.
type recorder struct{ ops []Op }

func (r *recorder) MaybeError(op Op) error {
	r.ops = append(r.ops, op)
	return nil
}

// workload exercises every FS and File method once or more and returns
// the first error, so that a single injected failure always surfaces.
func workload(fs FS) error {
	if err := fs.MkdirAll("/db", 0o755); err != nil {
		return err
	}
	f, err := fs.Create("/db/wal")
	if err != nil {
		return err
	}
	if _, err := f.Write([]byte("record1")); err != nil {
		f.Close()
		return err
	}
	if _, err := f.WriteAt([]byte("R"), 0); err != nil {
		f.Close()
		return err
	}
	if err := f.Truncate(7); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Stat(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := SyncDir(fs, "/db"); err != nil {
		return err
	}
	if f, err = fs.OpenReadWrite("/db/wal"); err != nil {
		return err
	}
	buf := make([]byte, 7)
	if _, err := f.ReadAt(buf, 0); err != nil {
		f.Close()
		return err
	}
	if string(buf) != "Record1" {
		f.Close()
		return fmt.Errorf("read %q", buf)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if f, err = fs.Open("/db/wal"); err != nil {
		return err
	}
	if _, err := io.ReadAll(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fs.Rename("/db/wal", "/db/wal.old"); err != nil {
		return err
	}
	if _, err := fs.List("/db"); err != nil {
		return err
	}
	if _, err := fs.Stat("/db/wal.old"); err != nil {
		return err
	}
	if err := fs.Remove("/db/wal.old"); err != nil {
		return err
	}
	return fs.RemoveAll("/db")
}

func TestErrorFSOnIndexSweep(t *testing.T) {
	rec := &recorder{}
	if err := workload(NewErrorFS(NewMemFS(), rec)); err != nil {
		t.Fatal(err)
	}
	// Every operation kind appears in the workload.
	for k := range numOpKinds {
		if !slices.ContainsFunc(rec.ops, func(op Op) bool { return op.Kind == k }) {
			t.Errorf("workload has no %v", k)
		}
	}

	var i int64
	for ; ; i++ {
		inj := OnIndex(i)
		efs := NewErrorFS(NewMemFS(), inj)
		err := workload(efs)
		if !inj.Fired() {
			if err != nil {
				t.Fatalf("index %d: injector did not fire but %v", i, err)
			}
			if inj.Seen() != int64(len(rec.ops)) {
				t.Fatalf("clean run saw %d ops, recorder %d", inj.Seen(), len(rec.ops))
			}
			break
		}
		if !errors.Is(err, ErrInjected) {
			t.Fatalf("index %d: workload returned %v", i, err)
		}
		op, _ := inj.FiredOp()
		if op != rec.ops[i] {
			t.Fatalf("index %d: fired on %v, want %v", i, op, rec.ops[i])
		}
		var ie *InjectedError
		if !errors.As(err, &ie) || ie.Op != op || !strings.Contains(err.Error(), op.String()) {
			t.Fatalf("index %d: error %v does not name %v", i, err, op)
		}
		if efs.Injected() != 1 {
			t.Fatalf("index %d: %d errors injected", i, efs.Injected())
		}
	}
	if i != int64(len(rec.ops)) {
		t.Fatalf("sweep ended at %d, workload has %d ops", i, len(rec.ops))
	}
}

func TestErrorFSOnIndexOnce(t *testing.T) {
	inj := OnIndex(2)
	fs := NewErrorFS(NewMemFS(), inj)
	var failed []int
	for i := range 10 {
		if _, err := fs.Stat("/"); err != nil {
			failed = append(failed, i)
		}
	}
	if !slices.Equal(failed, []int{2}) || inj.Seen() != 10 || inj.Index() != 2 {
		t.Fatalf("failed %v, seen %d", failed, inj.Seen())
	}
	if op, ok := inj.FiredOp(); !ok || op != (Op{OpStat, "/"}) {
		t.Fatalf("FiredOp = %v, %v", op, ok)
	}
	never := OnIndex(-1)
	fs.SetInjector(never)
	for range 5 {
		check(t, fs.MkdirAll("/x", 0o755))
	}
	if never.Fired() || never.Seen() != 5 {
		t.Fatalf("OnIndex(-1): fired %v seen %d", never.Fired(), never.Seen())
	}
}

func TestErrorFSShortWrite(t *testing.T) {
	p := []byte("0123456789abcdefghijklmnopqrstuvwxyz")
	partial := 0
	for seed := range uint64(20) {
		inner := NewMemFS()
		fs := NewErrorFS(inner, nil)
		f := mustCreate(t, fs, "/f")
		mustWrite(t, f, "head:")
		fs.SetInjector(ShortWrite(OnKinds(OpFileWrite), seed))
		n, err := f.Write(p)
		var sw *ShortWriteError
		if !errors.Is(err, ErrInjected) || !errors.As(err, &sw) {
			t.Fatalf("seed %d: err = %v", seed, err)
		}
		if n < 0 || n >= len(p) {
			t.Fatalf("seed %d: n = %d of %d", seed, n, len(p))
		}
		if n > 0 {
			partial++
		}
		wantContent(t, inner, "/f", "head:"+string(p[:n]))
		// WriteAt is short too, at its offset.
		n, err = f.WriteAt(p, 100)
		if !errors.Is(err, ErrInjected) || n >= len(p) {
			t.Fatalf("seed %d: WriteAt = %d, %v", seed, n, err)
		}
		fs.SetInjector(nil)
		check(t, f.Close())
	}
	if partial == 0 {
		t.Fatal("no short write wrote anything")
	}
}

func TestErrorFSShortWriteOtherOps(t *testing.T) {
	// Only writes are shortened; other failures are plain.
	fs := NewErrorFS(NewMemFS(), ShortWrite(OnKinds(OpCreate), 1))
	_, err := fs.Create("/f")
	var sw *ShortWriteError
	if !errors.Is(err, ErrInjected) || errors.As(err, &sw) {
		t.Fatalf("Create: %v", err)
	}
	// A ShortWriteError with Frac 0 writes nothing.
	inner := NewMemFS()
	fs = NewErrorFS(inner, nil)
	f := mustCreate(t, fs, "/g")
	fs.SetInjector(InjectorFunc(func(op Op) error {
		return &ShortWriteError{Err: &InjectedError{Op: op}, Frac: 0}
	}))
	if n, err := f.Write([]byte("abc")); n != 0 || !errors.Is(err, ErrInjected) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	fs.SetInjector(nil)
	check(t, f.Close())
	wantContent(t, inner, "/g", "")
}

func TestErrorFSFilters(t *testing.T) {
	inner := NewMemFS()
	fs := NewErrorFS(inner, All(OnKinds(OpFileSync), OnPathContains("wal")))
	wal := mustCreate(t, fs, "/wal")
	other := mustCreate(t, fs, "/other")
	mustWrite(t, wal, "x")
	mustWrite(t, other, "y")
	if err := wal.Sync(); !errors.Is(err, ErrInjected) {
		t.Fatalf("sync of wal: %v", err)
	}
	check(t, other.Sync())
	check(t, wal.Close())
	check(t, other.Close())
	mustSyncDir(t, fs, "/")
	// The failed sync did not reach the inner file.
	c := inner.CrashClone(CrashOptions{})
	wantContent(t, c, "/wal", "")
	wantContent(t, c, "/other", "y")

	fs.SetInjector(OnPath(func(p string) bool { return p == "/other" }))
	if _, err := fs.Open("/other"); !errors.Is(err, ErrInjected) {
		t.Fatalf("Open /other: %v", err)
	}
	if _, err := fs.Open("/wal"); err != nil {
		t.Fatal(err)
	}
	if err := fs.Rename("/other", "/x"); !errors.Is(err, ErrInjected) {
		t.Fatalf("Rename uses the old name as path: %v", err)
	}

	fs.SetInjector(OnKinds(OpRemove, OpList))
	if err := fs.Remove("/wal"); !errors.Is(err, ErrInjected) {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := fs.List("/"); !errors.Is(err, ErrInjected) {
		t.Fatalf("List: %v", err)
	}
	check(t, fs.RemoveAll("/nothing"))
	wantContent(t, inner, "/wal", "x")
}

func TestErrorFSAllAny(t *testing.T) {
	// All stops at the first nil, so OnIndex counts only writes.
	inj := OnIndex(1)
	inner := NewMemFS()
	fs := NewErrorFS(inner, All(OnKinds(OpFileWrite), inj))
	f := mustCreate(t, fs, "/f")
	var errs []bool
	for range 4 {
		_, err := f.Write([]byte("ab"))
		errs = append(errs, err != nil)
		check(t, f.Sync())
	}
	check(t, f.Close())
	if !slices.Equal(errs, []bool{false, true, false, false}) || inj.Seen() != 4 {
		t.Fatalf("failures %v, index injector saw %d", errs, inj.Seen())
	}
	wantContent(t, inner, "/f", "ababab")

	fs.SetInjector(Any(OnKinds(OpStat), OnPathContains("zz")))
	if _, err := fs.Stat("/f"); !errors.Is(err, ErrInjected) {
		t.Fatalf("Stat: %v", err)
	}
	if _, err := fs.List("/zz"); !errors.Is(err, ErrInjected) {
		t.Fatalf("List /zz: %v", err)
	}
	if _, err := fs.List("/"); err != nil {
		t.Fatal(err)
	}
	fs.SetInjector(Any())
	if _, err := fs.Stat("/f"); err != nil {
		t.Fatal(err)
	}
	fs.SetInjector(All())
	if _, err := fs.Stat("/f"); !errors.Is(err, ErrInjected) {
		t.Fatalf("All() let Stat through: %v", err)
	}
}

func TestErrorFSReadErrors(t *testing.T) {
	inner := NewMemFS()
	syncedFile(t, inner, "/f", "abc")
	fs := NewErrorFS(inner, OnKinds(OpFileRead))
	f, err := fs.Open("/f")
	check(t, err)
	defer f.Close()
	if n, err := f.Read(make([]byte, 3)); n != 0 || !errors.Is(err, ErrInjected) {
		t.Fatalf("Read = %d, %v", n, err)
	}
	if n, err := f.ReadAt(make([]byte, 3), 0); n != 0 || !errors.Is(err, ErrInjected) {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
	fs.SetInjector(nil)
	// The failed Read did not move the position.
	if got, err := io.ReadAll(f); err != nil || string(got) != "abc" {
		t.Fatalf("ReadAll = %q, %v", got, err)
	}
}

func TestErrorFSSticky(t *testing.T) {
	s := Sticky(All(OnKinds(OpFileSync), OnIndex(0)))
	fs := NewErrorFS(NewMemFS(), s)
	f := mustCreate(t, fs, "/f")
	mustWrite(t, f, "a")
	if s.Dead() {
		t.Fatal("dead before any failure")
	}
	if err := f.Sync(); !errors.Is(err, ErrInjected) {
		t.Fatalf("Sync: %v", err)
	}
	if !s.Dead() {
		t.Fatal("not dead after a failure")
	}
	if _, err := f.Write([]byte("b")); !errors.Is(err, ErrInjected) {
		t.Fatalf("Write after death: %v", err)
	}
	if _, err := fs.Stat("/"); !errors.Is(err, ErrInjected) {
		t.Fatalf("Stat after death: %v", err)
	}
	if err := f.Close(); !errors.Is(err, ErrInjected) {
		t.Fatalf("Close after death: %v", err)
	}
	// Close released the inner file anyway.
	if _, err := f.(*errorFile).f.Write([]byte("c")); err == nil {
		t.Fatal("inner file still open after an injected Close error")
	}
	if fs.Injected() != 4 {
		t.Fatalf("Injected = %d", fs.Injected())
	}
}

func TestErrorFSRandomly(t *testing.T) {
	pattern := func(p float64, seed uint64) []bool {
		inj := Randomly(p, seed)
		var out []bool
		for range 200 {
			out = append(out, inj.MaybeError(Op{OpStat, "/"}) != nil)
		}
		return out
	}
	count := func(b []bool) (n int) {
		for _, v := range b {
			if v {
				n++
			}
		}
		return n
	}
	a, b, c := pattern(0.3, 1), pattern(0.3, 1), pattern(0.3, 2)
	if !slices.Equal(a, b) {
		t.Fatal("same seed, different failures")
	}
	if slices.Equal(a, c) {
		t.Fatal("different seeds, same failures")
	}
	if n := count(a); n < 30 || n > 90 {
		t.Fatalf("%d of 200 failed at p=0.3", n)
	}
	if count(pattern(0, 1)) != 0 || count(pattern(1, 1)) != 200 {
		t.Fatal("p=0 or p=1 misbehaves")
	}
}

func TestErrorFSPassThrough(t *testing.T) {
	inner := NewMemFS()
	fs := NewErrorFS(inner, nil)
	if fs.Unwrap() != FS(inner) {
		t.Fatal("Unwrap")
	}
	syncedFile(t, fs, "/f", "abc")
	mustSyncDir(t, fs, "/")
	wantContent(t, inner.CrashClone(CrashOptions{}), "/f", "abc")
	if fs.Injected() != 0 {
		t.Fatal("nil injector injected")
	}
}

func TestOpKindString(t *testing.T) {
	seen := make(map[string]bool)
	for k := range numOpKinds {
		s := k.String()
		if s == "" || strings.HasPrefix(s, "OpKind(") || seen[s] {
			t.Fatalf("kind %d: %q", int(k), s)
		}
		seen[s] = true
	}
	if got := OpKind(99).String(); got != "OpKind(99)" {
		t.Fatal(got)
	}
	if got := (Op{OpFileWrite, "/a"}).String(); got != "file-write /a" {
		t.Fatal(got)
	}
	e := &ShortWriteError{Err: &InjectedError{Op: Op{OpFileWrite, "/a"}}, Frac: 0.5}
	if got := e.Error(); got != "vfs: injected error: file-write /a (short write)" {
		t.Fatal(got)
	}
	if e.prefixLen(10) != 5 || e.prefixLen(0) != 0 || e.prefixLen(1) != 0 {
		t.Fatal("prefixLen")
	}
	if (&ShortWriteError{Frac: 1}).prefixLen(4) != 3 {
		t.Fatal("prefixLen must stay below the length")
	}
}
