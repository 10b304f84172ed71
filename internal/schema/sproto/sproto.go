package sproto

import (
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/spoolmq/spool/internal/schema"
)

// protoSchema is a compiled schema. It is immutable, so one value serves
// concurrent Validate and Check calls.
type protoSchema struct {
	fd    protoreflect.FileDescriptor
	canon string
	// roots mirrors the file's messages by position, as message indexes
	// address them.
	roots []*node
}

// node is a message at a position in the file, with its nested messages.
type node struct {
	info   *msgInfo
	nested []*node
}

var _ schema.Schema = (*protoSchema)(nil)

func newSchema(fd protoreflect.FileDescriptor) (*protoSchema, error) {
	canon, err := canonical(fd)
	if err != nil {
		return nil, err
	}
	t := &tables{infos: map[protoreflect.FullName]*msgInfo{}}
	roots, err := t.nodes(fd.Messages())
	if err != nil {
		return nil, err
	}
	return &protoSchema{fd: fd, canon: canon, roots: roots}, nil
}

func (t *tables) nodes(ms protoreflect.MessageDescriptors) ([]*node, error) {
	out := make([]*node, ms.Len())
	for i := range out {
		md := ms.Get(i)
		info, err := t.info(md)
		if err != nil {
			return nil, err
		}
		nested, err := t.nodes(md.Messages())
		if err != nil {
			return nil, err
		}
		out[i] = &node{info: info, nested: nested}
	}
	return out, nil
}

// Canonical returns the file's descriptor, normalized, as compact JSON
// (see canonical).
func (s *protoSchema) Canonical() string { return s.canon }
