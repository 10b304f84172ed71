package schema

// Line diffs of schema texts, for the CLI's spool schema diff and the web
// console's schema page.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// PrettyJSON re-indents a JSON text with two spaces, keeping its key
// order; ok is false if text is not JSON.
func PrettyJSON(text string) (string, bool) {
	var b bytes.Buffer
	if err := json.Indent(&b, []byte(text), "", "  "); err != nil {
		return "", false
	}
	return b.String(), true
}

// sortedJSON re-indents a JSON text with two spaces and its objects' keys
// sorted, so that two versions differ only where their content does; ok
// is false if text is not JSON.
func sortedJSON(text string) (string, bool) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", false
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", false
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return "", false
	}
	return b.String(), true
}

// DiffText is a schema's text as diff compares it: Avro and JSON Schema
// re-indented with sorted keys, Protobuf as it is.
func DiffText(schemaType, text string) string {
	if Type(schemaType) != Protobuf {
		if s, ok := sortedJSON(text); ok {
			return s
		}
	}
	return text
}

// SplitLines splits text into lines without their newlines.
func SplitLines(text string) []string {
	if text == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(text, "\n"), "\n")
}

// DiffOp is one line of a line diff: Kind ' ' in both, '-' only in the
// old text, '+' only in the new.
type DiffOp struct {
	Kind byte
	Line string
}

// maxDiffCells bounds the table of the longest common subsequence; a
// larger change (after the lines both texts start and end with) is shown
// as the old lines removed and the new ones added.
const maxDiffCells = 4 << 20

// LineDiff returns the edit from a to b along a longest common
// subsequence of their lines.
func LineDiff(a, b []string) []DiffOp {
	var ops []DiffOp
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		ops = append(ops, DiffOp{' ', a[pre]})
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	ma, mb := a[pre:len(a)-suf], b[pre:len(b)-suf]
	n, m := len(ma), len(mb)
	if n*m > maxDiffCells {
		for _, l := range ma {
			ops = append(ops, DiffOp{'-', l})
		}
		for _, l := range mb {
			ops = append(ops, DiffOp{'+', l})
		}
	} else {
		// lcs[i*(m+1)+j] is the length of the longest common
		// subsequence of ma[i:] and mb[j:].
		lcs := make([]int32, (n+1)*(m+1))
		for i := n - 1; i >= 0; i-- {
			for j := m - 1; j >= 0; j-- {
				if ma[i] == mb[j] {
					lcs[i*(m+1)+j] = lcs[(i+1)*(m+1)+j+1] + 1
				} else {
					lcs[i*(m+1)+j] = max(lcs[(i+1)*(m+1)+j], lcs[i*(m+1)+j+1])
				}
			}
		}
		i, j := 0, 0
		for i < n || j < m {
			switch {
			case i < n && j < m && ma[i] == mb[j]:
				ops = append(ops, DiffOp{' ', ma[i]})
				i++
				j++
			case i < n && (j == m || lcs[(i+1)*(m+1)+j] >= lcs[i*(m+1)+j+1]):
				ops = append(ops, DiffOp{'-', ma[i]})
				i++
			default:
				ops = append(ops, DiffOp{'+', mb[j]})
				j++
			}
		}
		// Within each run of changes, removals first, as diff(1) does.
		for k := pre; k < len(ops); {
			if ops[k].Kind == ' ' {
				k++
				continue
			}
			e := k
			for e < len(ops) && ops[e].Kind != ' ' {
				e++
			}
			run := ops[k:e]
			var del, add []DiffOp
			for _, op := range run {
				if op.Kind == '-' {
					del = append(del, op)
				} else {
					add = append(add, op)
				}
			}
			copy(run, append(del, add...))
			k = e
		}
	}
	for _, l := range a[len(a)-suf:] {
		ops = append(ops, DiffOp{' ', l})
	}
	return ops
}

// WriteUnifiedDiff writes the unified diff of a and b, with context lines
// of context around each change, under the headers "--- oldName" and
// "+++ newName"; nothing if they are the same. It reports whether they
// differ.
func WriteUnifiedDiff(w io.Writer, oldName, newName string, a, b []string, context int) bool {
	ops := LineDiff(a, b)
	var changes []int // indexes of changed ops
	for k, op := range ops {
		if op.Kind != ' ' {
			changes = append(changes, k)
		}
	}
	if len(changes) == 0 {
		return false
	}
	fmt.Fprintf(w, "--- %s\n+++ %s\n", oldName, newName)
	// aLine[k] and bLine[k]: lines of a and b before ops[k].
	aLine := make([]int, len(ops)+1)
	bLine := make([]int, len(ops)+1)
	for k, op := range ops {
		aLine[k+1], bLine[k+1] = aLine[k], bLine[k]
		if op.Kind != '+' {
			aLine[k+1]++
		}
		if op.Kind != '-' {
			bLine[k+1]++
		}
	}
	for c := 0; c < len(changes); {
		start := max(changes[c]-context, 0)
		end := changes[c] + 1
		for c++; c < len(changes) && changes[c]-end <= 2*context; c++ {
			end = changes[c] + 1
		}
		end = min(end+context, len(ops))
		fmt.Fprintf(w, "@@ -%s +%s @@\n", hunkRange(aLine[start], aLine[end]-aLine[start]),
			hunkRange(bLine[start], bLine[end]-bLine[start]))
		for _, op := range ops[start:end] {
			fmt.Fprintf(w, "%c%s\n", op.Kind, op.Line)
		}
	}
	return true
}

// hunkRange is a hunk's range in one text, "START,COUNT" (1-based; the
// line before when COUNT is 0; ",COUNT" left out when 1), as diff -u
// writes it.
func hunkRange(before, count int) string {
	switch count {
	case 0:
		return fmt.Sprintf("%d,0", before)
	case 1:
		return fmt.Sprintf("%d", before+1)
	}
	return fmt.Sprintf("%d,%d", before+1, count)
}
