package sproto

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/bufbuild/protocompile"
	"github.com/bufbuild/protocompile/reporter"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/spoolmq/spool/internal/schema"
)

// mainFile is the name the schema's own file is compiled under. The angle
// brackets keep it apart from real import paths; a dep may not use it.
const mainFile = "<schema>"

// Bounds on schema text, on top of schema.MaxDepth and schema.MaxDeps.
const (
	// maxFileSize bounds the schema text and each dep's text.
	maxFileSize = 1 << 20
	// maxTotalSize bounds the schema text and all deps together.
	maxTotalSize = 4 << 20
	// maxLexicalDepth bounds bracket nesting in the text before it is
	// parsed, so that no input makes the compiler recurse deeply. Message
	// declarations themselves nest at most 31 deep (the compiler's bound,
	// protoc's too, within schema.MaxDepth); this one leaves room for
	// oneofs and option values.
	maxLexicalDepth = 4 * schema.MaxDepth
	// maxErrors is how many compile errors one Parse error lists.
	maxErrors = 10
)

// Format is the PROTOBUF schema format.
type Format struct{}

var _ schema.Format = Format{}

// Parse compiles text, a .proto file, with deps as its imports (each
// dep's Name is the path the import statement uses).
func (Format) Parse(text string, deps []schema.Dep) (schema.Schema, error) {
	sources, err := checkInputs(text, deps)
	if err != nil {
		return nil, err
	}
	fd, err := compile(sources)
	if err != nil {
		return nil, err
	}
	if fd, err = rebuild(fd); err != nil {
		return nil, err
	}
	return newSchema(fd)
}

// checkInputs bounds the inputs and returns the sources by file name.
func checkInputs(text string, deps []schema.Dep) (map[string]string, error) {
	if len(deps) > schema.MaxDeps {
		return nil, fmt.Errorf("schema has %d references, more than the %d allowed", len(deps), schema.MaxDeps)
	}
	total := 0
	sources := make(map[string]string, len(deps)+1)
	add := func(name, text string) error {
		if len(text) > maxFileSize {
			return fmt.Errorf("%s is %d bytes, more than the %d allowed", describe(name), len(text), maxFileSize)
		}
		if total += len(text); total > maxTotalSize {
			return fmt.Errorf("schema and references are more than %d bytes together", maxTotalSize)
		}
		if d := lexicalDepth(text); d > maxLexicalDepth {
			return fmt.Errorf("%s nests brackets %d deep, more than the %d allowed", describe(name), d, maxLexicalDepth)
		}
		sources[name] = text
		return nil
	}
	if err := add(mainFile, text); err != nil {
		return nil, err
	}
	for i, d := range deps {
		switch {
		case d.Name == "":
			return nil, fmt.Errorf("reference %d has no name (the import path)", i)
		case d.Name == mainFile:
			return nil, fmt.Errorf("reference %d: the name %q is reserved for the schema itself", i, mainFile)
		}
		if _, dup := sources[d.Name]; dup {
			return nil, fmt.Errorf("reference %q is given twice", d.Name)
		}
		if err := add(d.Name, d.Text); err != nil {
			return nil, err
		}
	}
	return sources, nil
}

func describe(name string) string {
	if name == mainFile {
		return "schema"
	}
	return fmt.Sprintf("reference %q", name)
}

// lexicalDepth returns the deepest nesting of (), [], {} and <> in a
// .proto text, skipping strings and comments. It need not be exact: it
// only stops pathological input before the compiler sees it.
func lexicalDepth(s string) int {
	depth, deepest := 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '{', '[', '(', '<':
			if depth++; depth > deepest {
				deepest = depth
			}
		case '}', ']', ')', '>':
			if depth > 0 {
				depth--
			}
		case '"', '\'':
			i = skipString(s, i, c)
		case '/':
			i = skipComment(s, i)
		}
	}
	return deepest
}

// skipString returns the index of the quote closing the string opened at i.
func skipString(s string, i int, quote byte) int {
	for i++; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case quote, '\n':
			return i
		}
	}
	return i
}

// skipComment returns the index of the last byte of the comment starting
// at i, or i if none starts there.
func skipComment(s string, i int) int {
	if i+1 >= len(s) {
		return i
	}
	switch s[i+1] {
	case '/':
		if j := strings.IndexByte(s[i:], '\n'); j >= 0 {
			return i + j
		}
		return len(s)
	case '*':
		if j := strings.Index(s[i+2:], "*/"); j >= 0 {
			return i + 2 + j + 1
		}
		return len(s)
	}
	return i
}

// standard resolves the imports protoc ships with (google/protobuf/*).
var standard = protocompile.WithStandardImports(protocompile.ResolverFunc(
	func(path string) (protocompile.SearchResult, error) {
		return protocompile.SearchResult{}, errors.New("not a standard import")
	}))

// compile compiles sources[mainFile] with the others as its imports.
func compile(sources map[string]string) (protoreflect.FileDescriptor, error) {
	resolve := func(path string) (protocompile.SearchResult, error) {
		// The standard files come first so that a reference cannot
		// replace descriptor.proto, which option handling relies on.
		if path != mainFile {
			if r, err := standard.FindFileByPath(path); err == nil {
				return r, nil
			}
		}
		if text, ok := sources[path]; ok {
			return protocompile.SearchResult{Source: strings.NewReader(text)}, nil
		}
		return protocompile.SearchResult{}, fmt.Errorf("import %q is neither among the schema's references nor a standard import", path)
	}
	var errs []error
	rep := reporter.NewReporter(func(err reporter.ErrorWithPos) error {
		if errs = append(errs, err); len(errs) >= maxErrors {
			return err
		}
		return nil
	}, nil)
	c := protocompile.Compiler{
		Resolver:       protocompile.ResolverFunc(resolve),
		MaxParallelism: 1,
		Reporter:       rep,
	}
	files, err := c.Compile(context.Background(), mainFile)
	if err != nil {
		return nil, compileError(err, errs)
	}
	return files[0], nil
}

// compileError makes one error out of a failed compilation, naming the
// file and position of each problem as "<schema>:line:col".
func compileError(err error, reported []error) error {
	if len(reported) == 0 {
		return fmt.Errorf("invalid protobuf schema: %w", err)
	}
	msgs := make([]string, len(reported))
	for i, e := range reported {
		msgs[i] = e.Error()
	}
	more := ""
	if len(reported) >= maxErrors {
		more = " (stopped after the first ten errors)"
	}
	return fmt.Errorf("invalid protobuf schema%s: %s", more, strings.Join(msgs, "; "))
}

// rebuild turns the compiler's descriptors into protobuf-go's own, which
// resolve editions features (UTF-8 validation, field presence) the way
// protobuf-go's decoder applies them; with the compiler's descriptors the
// decoder would treat every editions string as unchecked.
func rebuild(fd protoreflect.FileDescriptor) (protoreflect.FileDescriptor, error) {
	files := new(protoregistry.Files)
	var add func(f protoreflect.FileDescriptor) (protoreflect.FileDescriptor, error)
	add = func(f protoreflect.FileDescriptor) (protoreflect.FileDescriptor, error) {
		if done, err := files.FindFileByPath(f.Path()); err == nil {
			return done, nil
		}
		imports := f.Imports()
		for i := 0; i < imports.Len(); i++ {
			if _, err := add(imports.Get(i).FileDescriptor); err != nil {
				return nil, err
			}
		}
		out, err := protodesc.NewFile(protodesc.ToFileDescriptorProto(f), files)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", describe(f.Path()), err)
		}
		if err := files.RegisterFile(out); err != nil {
			return nil, fmt.Errorf("%s: %w", describe(f.Path()), err)
		}
		return out, nil
	}
	return add(fd)
}
