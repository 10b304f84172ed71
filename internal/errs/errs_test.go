package errs

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"testing"
)

// Codes lists every Code constant declared in this package, each once.
func TestCodesComplete(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "errs.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var declared []Code
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Code" {
				continue
			}
			for _, v := range vs.Values {
				if lit, ok := v.(*ast.BasicLit); ok {
					declared = append(declared, Code(lit.Value[1:len(lit.Value)-1]))
				}
			}
		}
	}
	if len(declared) < 20 {
		t.Fatalf("found only %d declared codes", len(declared))
	}
	codes := Codes()
	for _, c := range declared {
		if !slices.Contains(codes, c) {
			t.Errorf("code %q is declared but missing from Codes()", c)
		}
	}
	for i, c := range codes {
		if !slices.Contains(declared, c) || slices.Index(codes, c) != i {
			t.Errorf("Codes() lists %q, which is not declared or listed twice", c)
		}
	}
}
