package sproto

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// canonical renders fd's descriptor as compact JSON. Comments and layout
// are gone from the descriptor already (no source info is kept); what
// remains is normalized where order carries no meaning: fields are sorted
// by number, reserved and extension ranges and names are sorted, and
// imports are sorted. Message and enum value order is kept, since message
// indexes and proto2 enum defaults depend on it.
func canonical(fd protoreflect.FileDescriptor) (string, error) {
	fdp := protodesc.ToFileDescriptorProto(fd)
	fdp.SourceCodeInfo = nil
	normalizeImports(fdp)
	for _, m := range fdp.MessageType {
		normalizeMessage(m)
	}
	for _, e := range fdp.EnumType {
		normalizeEnum(e)
	}
	sortExtensions(fdp.Extension)
	// protojson varies its whitespace on purpose; Compact removes it all,
	// leaving output that depends on the descriptor only.
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(fdp)
	if err != nil {
		return "", fmt.Errorf("rendering canonical form: %w", err)
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return "", fmt.Errorf("rendering canonical form: %w", err)
	}
	return out.String(), nil
}

// normalizeImports sorts the imports, keeping the public and weak import
// lists (which index the imports) pointing at the same files.
func normalizeImports(fdp *descriptorpb.FileDescriptorProto) {
	deps := fdp.Dependency
	sorted := slices.Clone(deps)
	slices.Sort(sorted)
	remap := func(idx []int32) []int32 {
		out := make([]int32, 0, len(idx))
		for _, i := range idx {
			if i >= 0 && int(i) < len(deps) {
				j, _ := slices.BinarySearch(sorted, deps[i])
				out = append(out, int32(j))
			}
		}
		slices.Sort(out)
		return out
	}
	fdp.PublicDependency = remap(fdp.PublicDependency)
	fdp.WeakDependency = remap(fdp.WeakDependency)
	fdp.Dependency = sorted
}

func normalizeMessage(m *descriptorpb.DescriptorProto) {
	slices.SortStableFunc(m.Field, func(a, b *descriptorpb.FieldDescriptorProto) int {
		return int(a.GetNumber()) - int(b.GetNumber())
	})
	sortExtensions(m.Extension)
	slices.SortStableFunc(m.ExtensionRange, func(a, b *descriptorpb.DescriptorProto_ExtensionRange) int {
		return int(a.GetStart()) - int(b.GetStart())
	})
	slices.SortStableFunc(m.ReservedRange, func(a, b *descriptorpb.DescriptorProto_ReservedRange) int {
		return int(a.GetStart()) - int(b.GetStart())
	})
	slices.Sort(m.ReservedName)
	for _, n := range m.NestedType {
		normalizeMessage(n)
	}
	for _, e := range m.EnumType {
		normalizeEnum(e)
	}
}

func normalizeEnum(e *descriptorpb.EnumDescriptorProto) {
	slices.SortStableFunc(e.ReservedRange, func(a, b *descriptorpb.EnumDescriptorProto_EnumReservedRange) int {
		return int(a.GetStart()) - int(b.GetStart())
	})
	slices.Sort(e.ReservedName)
}

func sortExtensions(exts []*descriptorpb.FieldDescriptorProto) {
	slices.SortStableFunc(exts, func(a, b *descriptorpb.FieldDescriptorProto) int {
		if c := cmp.Compare(a.GetExtendee(), b.GetExtendee()); c != 0 {
			return c
		}
		return int(a.GetNumber()) - int(b.GetNumber())
	})
}
