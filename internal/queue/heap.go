package queue

// item is one element of an indexed heap: ordered by (at, off).
type item struct {
	at   int64 // a time in ms, or the offset itself for offset-ordered heaps
	off  int64
	slot int32
}

func (a item) less(b item) bool { return a.at < b.at || a.at == b.at && a.off < b.off }

// Which position field of an entry a heap maintains.
const (
	posState = iota // the ready, waiting or leased heap (one at a time)
	posTTL          // the expiry heap
	posKey          // the entry's key heap
	numPos
)

// iheap is a binary min-heap of entry slots that records each element's
// index in the entry (entry.pos[which]), so any element is removed in
// O(log n).
type iheap struct {
	items []item
	which uint8
}

func (h *iheap) len() int { return len(h.items) }

func (h *iheap) top() (item, bool) {
	if len(h.items) == 0 {
		return item{}, false
	}
	return h.items[0], true
}

func (h *iheap) set(s []entry, i int) { s[h.items[i].slot].pos[h.which] = int32(i) }

func (h *iheap) push(s []entry, it item) {
	h.items = append(h.items, it)
	h.up(s, len(h.items)-1)
}

// remove deletes the element at index i (as recorded in its entry).
func (h *iheap) remove(s []entry, i int) item {
	it := h.items[i]
	s[it.slot].pos[h.which] = -1
	last := len(h.items) - 1
	if i != last {
		h.items[i] = h.items[last]
		h.set(s, i)
	}
	h.items[last] = item{}
	h.items = h.items[:last]
	if i != last {
		if !h.down(s, i) {
			h.up(s, i)
		}
	}
	return it
}

func (h *iheap) up(s []entry, i int) {
	it := h.items[i]
	for i > 0 {
		parent := (i - 1) / 2
		if !it.less(h.items[parent]) {
			break
		}
		h.items[i] = h.items[parent]
		h.set(s, i)
		i = parent
	}
	h.items[i] = it
	h.set(s, i)
}

// down sifts the element at i down and reports whether it moved.
func (h *iheap) down(s []entry, i int) bool {
	it := h.items[i]
	start, n := i, len(h.items)
	for {
		c := 2*i + 1
		if c >= n {
			break
		}
		if r := c + 1; r < n && h.items[r].less(h.items[c]) {
			c = r
		}
		if !h.items[c].less(it) {
			break
		}
		h.items[i] = h.items[c]
		h.set(s, i)
		i = c
	}
	h.items[i] = it
	h.set(s, i)
	return i > start
}
