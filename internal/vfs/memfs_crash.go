package vfs

import (
	"fmt"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
)

// CrashOptions chooses how much unsynced file data survives a simulated
// power loss in (*MemFS).CrashClone. Directory entries never survive
// unless synced, whatever the options.
type CrashOptions struct {
	// Rand, when set, makes each file keep a random part of its unsynced
	// writes and truncates: by default a prefix of random length (possibly
	// none, possibly all), applied in order. When nil only synced data
	// survives, and TearLastWrite and Reorder must be false.
	Rand *rand.Rand
	// TearLastWrite lets the last write that is applied to a file land only
	// partially: a random prefix of its bytes, possibly empty, possibly all.
	// An empty prefix does not extend the file. Needs Rand.
	TearLastWrite bool
	// Reorder applies a random subset of each file's unsynced operations
	// instead of a prefix, in their original order, modelling page-cache
	// writeback in any order: a later write can land while an earlier one is
	// lost, and bytes between the old end and a landed write read as zeros.
	// Each file draws a probability p uniformly from [0, 1) and keeps each
	// operation with probability p, so keeping all or none is not rare.
	// Needs Rand.
	Reorder bool
}

// CrashClone returns a new, independent MemFS holding what could be found
// after a power loss at this instant; fs itself is not changed.
//
// The tree is rebuilt from the root following only synced directory entries,
// recursively. Each reachable file's content is its synced content plus part
// of its unsynced operations as opts chooses. In the clone everything is
// synced: a second CrashClone of an untouched clone returns the same tree.
//
// The same inode can be reachable under more than one synced entry, for
// example when a rename was synced in the target directory but not in the
// source one. Each such file comes back as independent copies (separate
// inodes, not hard links) that start with identical content: its crash
// content is chosen once per inode. A directory reachable twice is copied
// twice the same way. A synced entry that would lead back into a directory
// being copied (possible only through renames of directories synced in a
// particular order) is dropped, so the clone is always a tree.
//
// The clone is deterministic for a given fs state and a Rand in a given
// state: directories are visited in sorted name order.
//
// CrashClone panics if TearLastWrite or Reorder is set without Rand.
func (fs *MemFS) CrashClone(opts CrashOptions) *MemFS {
	if opts.Rand == nil && (opts.TearLastWrite || opts.Reorder) {
		panic("vfs: CrashOptions.TearLastWrite and Reorder need CrashOptions.Rand")
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	c := &crashCloner{
		opts:     opts,
		onPath:   make(map[*memNode]bool),
		contents: make(map[*memNode][]byte),
	}
	return &MemFS{root: c.dir(fs.root)}
}

// crashCloner holds the state of one CrashClone.
type crashCloner struct {
	opts CrashOptions
	// onPath marks the source directories being copied, to cut cycles.
	onPath map[*memNode]bool
	// contents memoizes the crash content of each source file inode.
	contents map[*memNode][]byte
}

// dir copies the synced view of source directory src. MemFS.mu is held.
func (c *crashCloner) dir(src *memNode) *memNode {
	src.mu.Lock()
	mode, modTime := src.mode, src.modTime
	src.mu.Unlock()
	dst := newDirNode(mode.Perm())
	dst.modTime = modTime

	c.onPath[src] = true
	names := make([]string, 0, len(src.syncedEntries))
	for name := range src.syncedEntries {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		child := src.syncedEntries[name]
		switch {
		case !child.isDir:
			dst.entries[name] = c.file(child)
		case !c.onPath[child]:
			dst.entries[name] = c.dir(child)
		}
	}
	delete(c.onPath, src)
	for k, v := range dst.entries {
		dst.syncedEntries[k] = v
	}
	return dst
}

// file returns a new inode holding the crash content of src.
func (c *crashCloner) file(src *memNode) *memNode {
	src.mu.Lock()
	defer src.mu.Unlock()
	content, ok := c.contents[src]
	if !ok {
		content = c.crashContent(src)
		content = content[:len(content):len(content)]
		c.contents[src] = content
	}
	// content is never modified in place: the new inode treats it as its
	// synced snapshot and copies before changing it.
	return &memNode{
		mode:    src.mode,
		modTime: src.modTime,
		data:    content,
		synced:  content,
		aliased: true,
	}
}

// crashContent picks the content of src after a crash. src.mu is held.
func (c *crashCloner) crashContent(src *memNode) []byte {
	rng := c.opts.Rand
	ops := src.pending
	if rng == nil || len(ops) == 0 {
		return src.synced
	}
	var chosen []int
	if c.opts.Reorder {
		p := rng.Float64()
		for i := range ops {
			if rng.Float64() < p {
				chosen = append(chosen, i)
			}
		}
	} else {
		k := rng.IntN(len(ops) + 1)
		for i := range k {
			chosen = append(chosen, i)
		}
	}
	if len(chosen) == 0 {
		return src.synced
	}
	torn := -1
	if c.opts.TearLastWrite {
		for j := len(chosen) - 1; j >= 0; j-- {
			if !ops[chosen[j]].truncate {
				torn = chosen[j]
				break
			}
		}
	}
	buf := slices.Clone(src.synced)
	for _, i := range chosen {
		op := ops[i]
		switch {
		case op.truncate:
			buf = applyTruncate(buf, op.off)
		case i == torn:
			buf = applyWrite(buf, op.off, op.data[:rng.IntN(len(op.data)+1)])
		default:
			buf = applyWrite(buf, op.off, op.data)
		}
	}
	return buf
}

// String lists the current tree for test failure messages, one line per
// entry in sorted order, with each file's current size, synced size and
// number of unsynced operations. Entries not yet in their directory's
// synced set are marked "unsynced entry"; names that are gone from the
// current set but still synced (a crash would bring them back) are listed
// as "removed, entry still synced".
func (fs *MemFS) String() string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var b strings.Builder
	b.WriteString("/\n")
	fs.dumpLocked(&b, "/", fs.root, make(map[*memNode]bool))
	return b.String()
}

// dumpLocked writes the entries of dir d, named p, to b. fs.mu is held.
func (fs *MemFS) dumpLocked(b *strings.Builder, p string, d *memNode, seen map[*memNode]bool) {
	seen[d] = true
	names := make([]string, 0, len(d.entries))
	for name := range d.entries {
		names = append(names, name)
	}
	for name := range d.syncedEntries {
		if _, ok := d.entries[name]; !ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		full := path.Join(p, name)
		n, cur := d.entries[name]
		syncedNode, synced := d.syncedEntries[name]
		var note string
		switch {
		case !cur:
			n = syncedNode
			note = "  [removed, entry still synced]"
		case !synced:
			note = "  [unsynced entry]"
		case syncedNode != n:
			note = "  [unsynced entry; synced entry names another inode]"
		}
		if n.isDir {
			fmt.Fprintf(b, "%s/%s\n", full, note)
			if cur && !seen[n] {
				fs.dumpLocked(b, full, n, seen)
			}
			continue
		}
		n.mu.Lock()
		size, syncedSize, ops := len(n.data), len(n.synced), len(n.pending)
		n.mu.Unlock()
		fmt.Fprintf(b, "%s  %d bytes (synced %d, %d unsynced ops)%s\n", full, size, syncedSize, ops, note)
	}
}
