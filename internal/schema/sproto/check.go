package sproto

import "github.com/spoolmq/spool/internal/schema"

// Check returns the issues that stop a reader using s from reading data
// written with writer.
func (s *protoSchema) Check(writer schema.Schema) []schema.Issue {
	return nil
}
