package queue

import (
	"cmp"
	"slices"
	"sort"
)

// qitem is one offset of the main range in arrival (= offset) order.
type qitem struct {
	off  int64
	slot int32
}

// qvalid reports whether it still names a tracked entry of the main range.
func (p *partition) qvalid(it qitem) bool {
	e := &p.slab[it.slot]
	return e.state != stFree && e.off == it.off && !e.outside
}

// advanceFloor moves the floor to the lowest tracked offset of the main
// range, or the cursor if none; finished offsets leave the queue lazily.
func (p *partition) advanceFloor() {
	for p.qhead < len(p.q) && !p.qvalid(p.q[p.qhead]) {
		p.qhead++
	}
	if p.qhead == len(p.q) {
		p.q, p.qhead = p.q[:0], 0
		p.floor = p.cursor
		return
	}
	p.floor = p.q[p.qhead].off
	switch live := len(p.q) - p.qhead; {
	case live > 2*p.mainCount+64:
		// Mostly finished offsets behind a held floor: filter (amortized
		// O(1) per finished offset, memory O(tracked)).
		n := 0
		for _, it := range p.q[p.qhead:] {
			if p.qvalid(it) {
				p.q[n] = it
				n++
			}
		}
		p.q, p.qhead = p.q[:n], 0
	case p.qhead > 1024 && p.qhead >= len(p.q)/2:
		n := copy(p.q, p.q[p.qhead:])
		p.q, p.qhead = p.q[:n], 0
	}
}

// skipAhead moves the cursor over restored done ranges it reached.
func (p *partition) skipAhead() {
	for len(p.ahead) > 0 && p.ahead[0][0] <= p.cursor {
		p.cursor = max(p.cursor, p.ahead[0][1])
		p.ahead = p.ahead[1:]
	}
}

// inAhead reports whether off lies in a restored done range.
func (p *partition) inAhead(off int64) bool {
	i := sort.Search(len(p.ahead), func(i int) bool { return p.ahead[i][1] > off })
	return i < len(p.ahead) && p.ahead[i][0] <= off
}

// addAhead marks off (at or above the cursor) done for the main range.
func (p *partition) addAhead(off int64) {
	if off < p.cursor || p.inAhead(off) || off == maxOffset {
		return
	}
	i := sort.Search(len(p.ahead), func(i int) bool { return p.ahead[i][0] > off })
	p.ahead = slices.Insert(p.ahead, i, [2]int64{off, off + 1})
	p.ahead = mergeRanges(p.ahead)
	p.skipAhead()
	p.advanceFloor()
}

// normalizeRanges sorts ranges, drops empty ones and what lies below floor,
// and merges overlapping or adjacent ones.
func normalizeRanges(in [][2]int64, floor int64) [][2]int64 {
	out := make([][2]int64, 0, len(in))
	for _, r := range in {
		r[0] = max(r[0], floor)
		if r[0] < r[1] {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b [2]int64) int {
		return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1]))
	})
	return mergeRanges(out)
}

// mergeRanges merges overlapping or adjacent ranges of a sorted list in place.
func mergeRanges(rs [][2]int64) [][2]int64 {
	n := 0
	for _, r := range rs {
		if n > 0 && r[0] <= rs[n-1][1] {
			rs[n-1][1] = max(rs[n-1][1], r[1])
			continue
		}
		rs[n] = r
		n++
	}
	return rs[:n]
}

// doneRanges lists the finished ranges above the floor: the gaps between
// tracked offsets of the main range up to the cursor, then the restored
// ranges not reached yet.
func (p *partition) doneRanges() [][2]int64 {
	var out [][2]int64
	add := func(from, to int64) {
		if from >= to {
			return
		}
		if n := len(out); n > 0 && out[n-1][1] >= from {
			out[n-1][1] = max(out[n-1][1], to)
			return
		}
		out = append(out, [2]int64{from, to})
	}
	next := p.floor
	for _, it := range p.q[p.qhead:] {
		if p.qvalid(it) {
			add(next, it.off)
			next = it.off + 1
		}
	}
	add(next, p.cursor)
	for _, r := range p.ahead {
		add(r[0], r[1])
	}
	return out
}
