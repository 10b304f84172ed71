package api

// Tests that keep docs/api.md and the ErrorInfo comment in
// proto/spool/v1/types.proto in step with the services and error codes the
// code has. Each reports every gap at once, with where to document it.

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/spoolmq/spool/gen/spool/v1" // registers the spool.v1 descriptors
	"github.com/spoolmq/spool/internal/errs"
)

// readRepoFile returns the file at path, relative to the repository's root.
func readRepoFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile("../../" + path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// reportGaps fails t with every gap, one per line.
func reportGaps(t *testing.T, what string, gaps []string) {
	t.Helper()
	if len(gaps) > 0 {
		t.Errorf("%d %s:\n  %s", len(gaps), what, strings.Join(gaps, "\n  "))
	}
}

// tableRows returns the cells of the Markdown table rows in doc between the
// heading line heading and the next heading whose first cell starts with a
// backtick, header rows excepted.
func tableRows(t *testing.T, doc, heading string) [][]string {
	t.Helper()
	_, sec, ok := strings.Cut("\n"+doc, "\n"+heading+"\n")
	if !ok {
		t.Fatalf("no heading %q", heading)
	}
	if i := strings.Index(sec, "\n#"); i >= 0 {
		sec = sec[:i]
	}
	var rows [][]string
	lines := strings.Split(sec, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "| `") || i+1 < len(lines) && strings.HasPrefix(lines[i+1], "|-") {
			continue
		}
		cells := strings.Split(strings.Trim(l, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		rows = append(rows, cells)
	}
	return rows
}

var backticked = regexp.MustCompile("`([^`]+)`")

// quoted returns the backticked words of a table cell.
func quoted(cell string) []string {
	var out []string
	for _, m := range backticked.FindAllStringSubmatch(cell, -1) {
		out = append(out, m[1])
	}
	return out
}

// TestDocsAPIServices checks the service table of docs/api.md (the rows
// under "# Native API" that start with a service name) against the services
// of package spool.v1 in the generated descriptors: every RPC of every
// service is listed in a row of its service (a service may have several
// rows), and every listed RPC exists.
func TestDocsAPIServices(t *testing.T) {
	const doc = "docs/api.md"
	listed := map[string][]string{} // service -> RPCs listed
	for _, row := range tableRows(t, readRepoFile(t, doc), "# Native API") {
		names := quoted(row[0])
		if len(row) < 2 || len(names) != 1 || !strings.HasPrefix(names[0], "spool.v1.") {
			continue
		}
		listed[names[0]] = append(listed[names[0]], quoted(row[1])...)
	}
	var gaps []string
	exists := map[string]bool{}
	n := 0
	protoregistry.GlobalFiles.RangeFilesByPackage("spool.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			sd := fd.Services().Get(i)
			svc := string(sd.FullName())
			exists[svc] = true
			for j := range sd.Methods().Len() {
				m := string(sd.Methods().Get(j).Name())
				exists[svc+"/"+m] = true
				n++
				if !slices.Contains(listed[svc], m) {
					gaps = append(gaps, "RPC "+svc+"/"+m+" ("+fd.Path()+"): add `"+m+"` to a row of `"+svc+"` in the service table of "+doc)
				}
			}
		}
		return true
	})
	if n == 0 {
		t.Fatal("no spool.v1 services registered")
	}
	for svc, ms := range listed {
		if !exists[svc] {
			gaps = append(gaps, "service "+svc+" is in the service table of "+doc+" but does not exist")
			continue
		}
		for _, m := range ms {
			if !exists[svc+"/"+m] {
				gaps = append(gaps, "RPC "+svc+"/"+m+" is in the service table of "+doc+" but does not exist")
			}
		}
	}
	slices.Sort(gaps)
	reportGaps(t, "differences between the spool.v1 services and "+doc, gaps)
}

// errorCodes returns the values of the Code constants declared in package
// errs, read from its source so that a new constant is seen without being
// registered anywhere.
func errorCodes(t *testing.T) []errs.Code {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("../errs/*.go")
	if err != nil {
		t.Fatal(err)
	}
	var codes []errs.Code
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Code" {
					continue
				}
				for _, v := range vs.Values {
					lit, ok := v.(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Fatalf("%s: a Code constant that is not a string literal", fset.Position(v.Pos()))
					}
					s, _ := strconv.Unquote(lit.Value)
					codes = append(codes, errs.Code(s))
				}
			}
		}
	}
	if len(codes) == 0 {
		t.Fatal("no Code constants found in internal/errs")
	}
	return codes
}

// TestDocsAPIErrorCodes checks that every error code of internal/errs is in
// the error table of docs/api.md, with the Connect code the API maps it to
// and whether it is retriable, and in the code list of the ErrorInfo
// comment in proto/spool/v1/types.proto; and that neither names a code that
// does not exist.
func TestDocsAPIErrorCodes(t *testing.T) {
	const (
		doc   = "docs/api.md"
		proto = "proto/spool/v1/types.proto"
	)
	codes := errorCodes(t)
	isCode := map[string]bool{}
	for _, c := range codes {
		isCode[string(c)] = true
	}
	var gaps []string

	// docs/api.md: | `code`, `code` | `connect code` | yes… or no… |
	inTable := map[string]bool{}
	for _, row := range tableRows(t, readRepoFile(t, doc), "## Errors") {
		if len(row) < 3 {
			continue
		}
		cc := quoted(row[1])
		for _, c := range quoted(row[0]) {
			inTable[c] = true
			if !isCode[c] {
				gaps = append(gaps, "code "+c+" is in the error table of "+doc+" but not in internal/errs")
				continue
			}
			want := "(none: mapped to internal)"
			if code, ok := connectCodes[errs.Code(c)]; ok {
				want = code.String()
			}
			if len(cc) != 1 || cc[0] != want {
				gaps = append(gaps, "code "+c+": the error table of "+doc+" gives Connect code "+row[1]+"; the API returns `"+want+"`")
			}
			retriable := (&errs.Error{Code: errs.Code(c)}).Retriable()
			if yes := strings.HasPrefix(row[2], "yes"); yes != retriable || (!yes && !strings.HasPrefix(row[2], "no")) {
				gaps = append(gaps, "code "+c+": the error table of "+doc+" says retriable \""+row[2]+"\"; it is "+strconv.FormatBool(retriable)+" (a row's last cell starts with yes or no)")
			}
		}
	}

	// types.proto: the comment of ErrorInfo.code, "Stable code, one of: a, b, c. …".
	src := readRepoFile(t, proto)
	_, msg, ok := strings.Cut(src, "\nmessage ErrorInfo {\n")
	if !ok {
		t.Fatalf("%s: no message ErrorInfo", proto)
	}
	msg, _, _ = strings.Cut(msg, "\n}\n")
	var comment []string
	for _, l := range strings.Split(msg, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "string code = ") {
			break
		}
		if c, ok := strings.CutPrefix(l, "//"); ok {
			comment = append(comment, strings.TrimSpace(c))
		} else {
			comment = nil
		}
	}
	_, list, ok := strings.Cut(strings.Join(comment, " "), "one of:")
	if !ok {
		t.Fatalf("%s: the comment of ErrorInfo.code has no \"one of:\" list", proto)
	}
	list, _, _ = strings.Cut(list, ".")
	inProto := map[string]bool{}
	for _, c := range strings.Split(list, ",") {
		c = strings.TrimSpace(c)
		inProto[c] = true
		if !isCode[c] {
			gaps = append(gaps, "code "+c+" is in the ErrorInfo.code comment of "+proto+" but not in internal/errs")
		}
	}

	for _, c := range codes {
		if !inTable[string(c)] {
			gaps = append(gaps, "code "+string(c)+": add it to the error table (\"## Errors\") of "+doc)
		}
		if !inProto[string(c)] {
			gaps = append(gaps, "code "+string(c)+": add it to the list in the comment of ErrorInfo.code in "+proto+" (then make proto)")
		}
		if _, ok := connectCodes[c]; !ok {
			gaps = append(gaps, "code "+string(c)+": connectCodes in internal/api/errors.go has no Connect code for it")
		}
	}
	reportGaps(t, "differences between internal/errs and the documented error codes", gaps)
}
