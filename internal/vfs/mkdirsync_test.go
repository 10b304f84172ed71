package vfs

import "testing"

func TestMkdirAllSyncSurvivesCrash(t *testing.T) {
	fs := NewMemFS()
	if err := fs.MkdirAll("/data", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(fs, "/"); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAllSync(fs, "/data/topics/orders/0", 0o755); err != nil {
		t.Fatal(err)
	}
	c := fs.CrashClone(CrashOptions{})
	if _, err := c.Stat("/data/topics/orders/0"); err != nil {
		t.Fatalf("path lost in crash: %v\n%s", err, c)
	}
	// Plain MkdirAll of a deeper path is not durable: the strict model must
	// say so, or the test above proves nothing.
	if err := fs.MkdirAll("/data/topics/other/0", 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.CrashClone(CrashOptions{}).Stat("/data/topics/other"); err == nil {
		t.Fatal("unsynced directory survived a crash")
	}
	if err := MkdirAllSync(fs, "/data/topics/orders/0", 0o755); err != nil {
		t.Fatalf("existing path: %v", err)
	}
}
