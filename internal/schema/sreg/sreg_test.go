package sreg

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/catalog"
	"github.com/spoolmq/spool/internal/state"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// env is a registry on a real broker and state store, served over HTTP,
// with a franz-go schema registry client.
type env struct {
	t   *testing.T
	dir string
	st  *state.Store
	b   *broker.Broker
	reg *Registry
	srv *httptest.Server
	cl  *sr.Client
	ctx context.Context
}

func newEnv(t *testing.T) *env {
	e := &env{t: t, dir: t.TempDir(), ctx: context.Background()}
	e.open()
	t.Cleanup(e.close)
	return e
}

func (e *env) open() {
	t := e.t
	t.Helper()
	st, err := state.Open(filepath.Join(e.dir, "state"), state.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.Open(broker.Config{DataDir: e.dir, State: st, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := New(Config{Space: b.Space("schema"), Formats: Formats(), Logger: quiet,
		Subscriptions: func(topic, sub string) bool {
			subs, err := b.Subscriptions(topic)
			return err == nil && slices.ContainsFunc(subs, func(s catalog.Subscription) bool { return s.Name == sub })
		}})
	if err != nil {
		t.Fatal(err)
	}
	e.st, e.b, e.reg = st, b, reg
	e.srv = httptest.NewServer(reg.Handler())
	e.cl, err = sr.NewClient(sr.URLs(e.srv.URL))
	if err != nil {
		t.Fatal(err)
	}
}

func (e *env) close() {
	if e.srv == nil {
		return
	}
	http.DefaultClient.CloseIdleConnections()
	e.srv.Close()
	e.b.Close()
	e.st.Close()
	e.srv = nil
}

func (e *env) reopen() {
	e.close()
	e.open()
}

// code returns the Confluent error code of err (0: none).
func code(err error) int {
	var re *sr.ResponseError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	if err != nil {
		return -1
	}
	return 0
}

const (
	avroV1 = `{"type":"record","name":"Order","namespace":"acme","fields":[{"name":"id","type":"long"},{"name":"item","type":"string"}]}`
	// v1 with an optional field: BACKWARD compatible.
	avroV2 = `{"type":"record","name":"Order","namespace":"acme","fields":[{"name":"id","type":"long"},{"name":"item","type":"string"},{"name":"qty","type":"int","default":1}]}`
	// a field without a default: not BACKWARD compatible with v1.
	avroBad = `{"type":"record","name":"Order","namespace":"acme","fields":[{"name":"id","type":"long"},{"name":"item","type":"string"},{"name":"price","type":"double"}]}`
	// v1 spelled differently: the same schema.
	avroV1Again = `{"namespace":"acme", "name":"Order", "type":"record",
		"fields":[{"name":"id","type":{"type":"long"}},{"type":"string","name":"item"}]}`
)

func TestRegisterLookupAndIDs(t *testing.T) {
	e := newEnv(t)
	ss, err := e.cl.CreateSchema(e.ctx, "orders-value", sr.Schema{Schema: avroV1})
	if err != nil {
		t.Fatal(err)
	}
	if ss.ID != 1 || ss.Version != 1 || ss.Subject != "orders-value" {
		t.Fatalf("first registration: %+v", ss)
	}
	// Registering an equivalent spelling returns the same id and version.
	id, err := e.cl.RegisterSchema(e.ctx, "orders-value", sr.Schema{Schema: avroV1Again}, -1, -1)
	if err != nil || id != 1 {
		t.Fatalf("re-registering an equivalent schema: id %d, %v", id, err)
	}
	if vs, _ := e.cl.SubjectVersions(e.ctx, "orders-value"); !slices.Equal(vs, []int{1}) {
		t.Fatalf("versions after re-registering: %v", vs)
	}
	// The same schema under another subject: the same id, its version 1.
	ss2, err := e.cl.CreateSchema(e.ctx, "other-value", sr.Schema{Schema: avroV1})
	if err != nil || ss2.ID != 1 || ss2.Version != 1 {
		t.Fatalf("same schema, other subject: %+v, %v", ss2, err)
	}
	ss3, err := e.cl.CreateSchema(e.ctx, "orders-value", sr.Schema{Schema: avroV2})
	if err != nil || ss3.ID != 2 || ss3.Version != 2 {
		t.Fatalf("second version: %+v, %v", ss3, err)
	}
	got, err := e.cl.LookupSchema(e.ctx, "orders-value", sr.Schema{Schema: avroV1Again})
	if err != nil || got.ID != 1 || got.Version != 1 {
		t.Fatalf("lookup: %+v, %v", got, err)
	}
	if _, err := e.cl.LookupSchema(e.ctx, "orders-value", sr.Schema{Schema: avroBad}); code(err) != CodeSchemaNotFound {
		t.Fatalf("lookup of an unregistered schema: %v", err)
	}
	if _, err := e.cl.LookupSchema(e.ctx, "nope", sr.Schema{Schema: avroV1}); code(err) != CodeSubjectNotFound {
		t.Fatalf("lookup in a missing subject: %v", err)
	}
	s, err := e.cl.SchemaByID(e.ctx, 2)
	if err != nil || s.Schema != avroV2 {
		t.Fatalf("schema 2: %+v, %v", s, err)
	}
	if _, err := e.cl.SchemaByID(e.ctx, 99); code(err) != CodeSchemaNotFound {
		t.Fatalf("missing id: %v", err)
	}
	latest, err := e.cl.SchemaByVersion(e.ctx, "orders-value", -1)
	if err != nil || latest.Version != 2 || latest.ID != 2 {
		t.Fatalf("latest: %+v, %v", latest, err)
	}
	if subs, _ := e.cl.SubjectsByID(e.ctx, 1); !slices.Equal(subs, []string{"orders-value", "other-value"}) {
		t.Fatalf("subjects of id 1: %v", subs)
	}
	if subs, _ := e.cl.Subjects(e.ctx); !slices.Equal(subs, []string{"orders-value", "other-value"}) {
		t.Fatalf("subjects: %v", subs)
	}
	types, err := e.cl.SupportedTypes(e.ctx)
	if err != nil || len(types) != 3 {
		t.Fatalf("types: %v, %v", types, err)
	}

	// Ids and versions survive a restart; new ids continue after them.
	e.reopen()
	if s, err := e.cl.SchemaByID(e.ctx, 2); err != nil || s.Schema != avroV2 {
		t.Fatalf("schema 2 after restart: %+v, %v", s, err)
	}
	ss4, err := e.cl.CreateSchema(e.ctx, "third", sr.Schema{Schema: `"string"`})
	if err != nil || ss4.ID != 3 {
		t.Fatalf("after restart: %+v, %v", ss4, err)
	}
}

func TestCompatibilityLevels(t *testing.T) {
	e := newEnv(t)
	if _, err := e.cl.CreateSchema(e.ctx, "s", sr.Schema{Schema: avroV1}); err != nil {
		t.Fatal(err)
	}
	// BACKWARD by default: a field without a default is refused, 409.
	_, err := e.cl.CreateSchema(e.ctx, "s", sr.Schema{Schema: avroBad})
	if code(err) != CodeIncompatible || !strings.Contains(err.Error(), "price") {
		t.Fatalf("incompatible registration: %v", err)
	}
	res, err := e.cl.CheckCompatibility(sr.WithParams(e.ctx, sr.Verbose), "s", -1, sr.Schema{Schema: avroBad})
	if err != nil || res.Is || len(res.Messages) == 0 || !strings.Contains(strings.Join(res.Messages, " "), "price") {
		t.Fatalf("verbose check: %+v, %v", res, err)
	}
	res, err = e.cl.CheckCompatibility(e.ctx, "s", -2, sr.Schema{Schema: avroV2})
	if err != nil || !res.Is {
		t.Fatalf("check against all: %+v, %v", res, err)
	}
	// FORWARD: the old schema must read the new one's data: a new field
	// without a default is fine, a removed field without a default is not.
	for _, r := range e.cl.SetCompatibility(e.ctx, sr.SetCompatibility{Level: sr.CompatForward}, "s") {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if _, err := e.cl.CreateSchema(e.ctx, "s", sr.Schema{Schema: avroBad}); err != nil {
		t.Fatalf("FORWARD registration: %v", err)
	}
	onlyID := `{"type":"record","name":"Order","namespace":"acme","fields":[{"name":"id","type":"long"}]}`
	if _, err := e.cl.CreateSchema(e.ctx, "s", sr.Schema{Schema: onlyID}); code(err) != CodeIncompatible {
		t.Fatalf("FORWARD, field removed: %v", err)
	}
	// Subject level and global level.
	rs := e.cl.Compatibility(e.ctx, "s")
	if rs[0].Err != nil || rs[0].Level != sr.CompatForward {
		t.Fatalf("subject level: %+v", rs[0])
	}
	rs = e.cl.Compatibility(e.ctx, "other")
	if code(rs[0].Err) != CodeSubjectLevelCompatNotSet {
		t.Fatalf("subject without a level: %+v", rs[0])
	}
	rs = e.cl.Compatibility(sr.WithParams(e.ctx, sr.DefaultToGlobal), "other")
	if rs[0].Err != nil || rs[0].Level != sr.CompatBackward {
		t.Fatalf("subject without a level, default to global: %+v", rs[0])
	}
	// NONE takes anything; a change of type is still refused when checked.
	e.cl.SetCompatibility(e.ctx, sr.SetCompatibility{Level: sr.CompatNone}, "s")
	if _, err := e.cl.CreateSchema(e.ctx, "s", sr.Schema{Schema: `"string"`}); err != nil {
		t.Fatalf("NONE: %v", err)
	}
	e.cl.SetCompatibility(e.ctx, sr.SetCompatibility{Level: sr.CompatBackward}, "s")
	if _, err := e.cl.CreateSchema(e.ctx, "s", sr.Schema{Schema: `{"type":"object"}`, Type: sr.TypeJSON}); code(err) != CodeIncompatible {
		t.Fatalf("type change: %v", err)
	}
	// Levels survive a restart.
	e.reopen()
	if rs := e.cl.Compatibility(e.ctx, "s"); rs[0].Level != sr.CompatBackward {
		t.Fatalf("subject level after restart: %+v", rs[0])
	}
}

func TestDeletes(t *testing.T) {
	e := newEnv(t)
	for _, s := range []string{avroV1, avroV2} {
		if _, err := e.cl.CreateSchema(e.ctx, "d", sr.Schema{Schema: s}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.cl.DeleteSchema(e.ctx, "d", 2, sr.HardDelete); code(err) != CodeVersionNotSoftDeleted {
		t.Fatalf("hard delete before soft: %v", err)
	}
	if err := e.cl.DeleteSchema(e.ctx, "d", 2, sr.SoftDelete); err != nil {
		t.Fatal(err)
	}
	if err := e.cl.DeleteSchema(e.ctx, "d", 2, sr.SoftDelete); code(err) != CodeVersionSoftDeleted {
		t.Fatalf("soft delete twice: %v", err)
	}
	if latest, err := e.cl.SchemaByVersion(e.ctx, "d", -1); err != nil || latest.Version != 1 {
		t.Fatalf("latest after soft delete: %+v, %v", latest, err)
	}
	// A soft-deleted version's schema is still readable by id.
	if _, err := e.cl.SchemaByID(e.ctx, 2); err != nil {
		t.Fatalf("soft-deleted schema by id: %v", err)
	}
	if vs, _ := e.cl.SubjectVersions(sr.WithParams(e.ctx, sr.ShowDeleted), "d"); !slices.Equal(vs, []int{1, 2}) {
		t.Fatalf("versions with deleted: %v", vs)
	}
	if err := e.cl.DeleteSchema(e.ctx, "d", 2, sr.HardDelete); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cl.SchemaByID(e.ctx, 2); code(err) != CodeSchemaNotFound {
		t.Fatalf("hard-deleted schema by id: %v", err)
	}
	if _, err := e.cl.DeleteSubject(e.ctx, "d", sr.HardDelete); code(err) != CodeSubjectNotSoftDeleted {
		t.Fatalf("hard delete of a live subject: %v", err)
	}
	vs, err := e.cl.DeleteSubject(e.ctx, "d", sr.SoftDelete)
	if err != nil || !slices.Equal(vs, []int{1}) {
		t.Fatalf("soft delete subject: %v, %v", vs, err)
	}
	if subs, _ := e.cl.Subjects(e.ctx); len(subs) != 0 {
		t.Fatalf("subjects after soft delete: %v", subs)
	}
	if _, err := e.cl.DeleteSubject(e.ctx, "d", sr.SoftDelete); code(err) != CodeSubjectSoftDeleted {
		t.Fatalf("soft delete twice: %v", err)
	}
	e.reopen()
	if vs, err := e.cl.DeleteSubject(e.ctx, "d", sr.HardDelete); err != nil || !slices.Equal(vs, []int{1}) {
		t.Fatalf("hard delete subject after restart: %v, %v", vs, err)
	}
	if _, err := e.cl.SubjectVersions(sr.WithParams(e.ctx, sr.ShowDeleted), "d"); code(err) != CodeSubjectNotFound {
		t.Fatalf("subject after hard delete: %v", err)
	}
	// Ids are never given out again.
	if ss, err := e.cl.CreateSchema(e.ctx, "d", sr.Schema{Schema: avroV2}); err != nil || ss.ID != 3 {
		t.Fatalf("after hard deletes: %+v, %v", ss, err)
	}
}

func TestReferences(t *testing.T) {
	e := newEnv(t)
	addr := `{"type":"record","name":"Address","namespace":"acme","fields":[{"name":"city","type":"string"}]}`
	if _, err := e.cl.CreateSchema(e.ctx, "address", sr.Schema{Schema: addr}); err != nil {
		t.Fatal(err)
	}
	cust := `{"type":"record","name":"Customer","namespace":"acme","fields":[{"name":"home","type":"acme.Address"}]}`
	refs := []sr.SchemaReference{{Name: "acme.Address", Subject: "address", Version: 1}}
	ss, err := e.cl.CreateSchema(e.ctx, "customer", sr.Schema{Schema: cust, References: refs})
	if err != nil {
		t.Fatal(err)
	}
	if len(ss.References) != 1 || ss.References[0].Subject != "address" {
		t.Fatalf("references: %+v", ss.References)
	}
	by, err := e.cl.SchemaReferences(e.ctx, "address", 1)
	if err != nil || len(by) != 1 || by[0].ID != ss.ID {
		t.Fatalf("referenced by: %+v, %v", by, err)
	}
	if _, err := e.cl.DeleteSubject(e.ctx, "address", sr.SoftDelete); code(err) != CodeReferenceExists {
		t.Fatalf("delete a referenced subject: %v", err)
	}
	// A reference to a missing subject or version, or a schema that uses
	// a name no reference gives: invalid.
	bad := []sr.SchemaReference{{Name: "acme.Address", Subject: "address", Version: 7}}
	if _, err := e.cl.CreateSchema(e.ctx, "c2", sr.Schema{Schema: cust, References: bad}); code(err) != CodeInvalidSchema {
		t.Fatalf("reference to a missing version: %v", err)
	}
	if _, err := e.cl.CreateSchema(e.ctx, "c2", sr.Schema{Schema: cust}); code(err) != CodeInvalidSchema {
		t.Fatalf("no reference for a name used: %v", err)
	}
}

func TestModes(t *testing.T) {
	e := newEnv(t)
	if r := e.cl.SetMode(e.ctx, sr.ModeReadOnly, "ro"); r[0].Err != nil {
		t.Fatal(r[0].Err)
	}
	if _, err := e.cl.CreateSchema(e.ctx, "ro", sr.Schema{Schema: avroV1}); code(err) != CodeOperationNotPermitted {
		t.Fatalf("register in READONLY: %v", err)
	}
	if _, err := e.cl.CreateSchema(e.ctx, "rw", sr.Schema{Schema: avroV1}); err != nil {
		t.Fatalf("another subject: %v", err)
	}
	// IMPORT: ids and versions as given.
	if r := e.cl.SetMode(e.ctx, sr.ModeImport, "imp"); r[0].Err != nil {
		t.Fatal(r[0].Err)
	}
	ss, err := e.cl.CreateSchemaWithIDAndVersion(e.ctx, "imp", sr.Schema{Schema: avroV2}, 100, 5)
	if err != nil || ss.ID != 100 || ss.Version != 5 {
		t.Fatalf("import: %+v, %v", ss, err)
	}
	if _, err := e.cl.RegisterSchema(e.ctx, "rw", sr.Schema{Schema: avroV2}, 200, 9); code(err) != CodeOperationNotPermitted {
		t.Fatalf("id outside IMPORT: %v", err)
	}
	// Ids after an imported one continue above it.
	if ss, err := e.cl.CreateSchema(e.ctx, "rw2", sr.Schema{Schema: `"int"`}); err != nil || ss.ID != 101 {
		t.Fatalf("after import: %+v, %v", ss, err)
	}
	if r := e.cl.Mode(e.ctx, "imp"); r[0].Mode != sr.ModeImport {
		t.Fatalf("mode: %+v", r[0])
	}
	if r := e.cl.Mode(e.ctx); r[0].Mode != sr.ModeReadWrite {
		t.Fatalf("global mode: %+v", r[0])
	}
}
