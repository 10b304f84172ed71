package main

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spoolmq/spool/internal/spooltest"
)

// startRegistry runs a Spool server in-process and returns the URL of its
// schema registry.
func startRegistry(t *testing.T) string {
	t.Helper()
	s := spooltest.StartServer(t)
	addr := s.Server().SchemaRegistryAddr()
	if addr == "" {
		t.Fatal("the server runs no schema registry")
	}
	return "http://" + addr
}

// schemaCmd returns the arguments of `spool schema --registry REG ARGS…`.
func schemaCmd(reg string, args ...string) []string {
	return append([]string{"schema", "--registry", reg}, args...)
}

// writeFile writes text to a file named name in dir and returns its path.
func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const (
	orderV1 = `{
  "type": "record",
  "name": "Order",
  "namespace": "com.acme",
  "fields": [
    {"name": "id", "type": "string"},
    {"name": "amount", "type": "long"}
  ]
}
`
	// orderV2 adds a field with a default: backward compatible.
	orderV2 = `{"type":"record","name":"Order","namespace":"com.acme","fields":[{"name":"id","type":"string"},{"name":"amount","type":"long"},{"name":"currency","type":"string","default":"EUR"}]}`
	// orderBad adds a field without a default: not backward compatible.
	orderBad = `{"type":"record","name":"Order","namespace":"com.acme","fields":[{"name":"id","type":"string"},{"name":"amount","type":"long"},{"name":"customer","type":"string"}]}`

	userJSON = `{"type":"object","properties":{"name":{"type":"string"}}}`

	commonProto = `syntax = "proto3";
package acme.common;
message Money { int64 cents = 1; }
`
	orderProto = `syntax = "proto3";
package acme;
import "acme/common.proto";
message Order {
  string id = 1;
  acme.common.Money total = 2;
}
`
)

func TestSchemaRegisterGetList(t *testing.T) {
	reg := startRegistry(t)
	dir := t.TempDir()
	v1 := writeFile(t, dir, "order.avsc", orderV1)
	v2 := writeFile(t, dir, "order-v2.avsc", orderV2)

	// Avro by the file's extension.
	r := ok(t, "", "", schemaCmd(reg, "register", "orders-value", "--file", v1)...)
	if r.stdout != "registered orders-value version 1, id 1\n" {
		t.Errorf("register stdout %q", r.stdout)
	}
	r = ok(t, "", "", schemaCmd(reg, "register", "orders-value", "--file", v1)...)
	if r.stdout != "orders-value already has this schema: version 1, id 1\n" {
		t.Errorf("register again: stdout %q", r.stdout)
	}
	r = ok(t, "", "", schemaCmd(reg, "register", "orders-value", "-f", v2, "-o", "json")...)
	var got struct {
		Subject     string
		ID, Version int
		New         bool
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Subject != "orders-value" || got.Version != 2 || got.ID != 2 || !got.New {
		t.Errorf("register json: %+v, %v: %s", got, err, r.stdout)
	}

	// JSON Schema from stdin, with --type.
	r = ok(t, "", userJSON, schemaCmd(reg, "register", "users-value", "--file", "-", "--type", "JSON")...)
	mustContain(t, "register json stdout", r.stdout, "registered users-value version 1, id 3")
	// JSON Schema by the file's extension.
	ok(t, "", "", schemaCmd(reg, "register", "users2-value", "--file", writeFile(t, dir, "user.json", userJSON))...)

	// Protobuf, with a reference by number and by latest.
	ok(t, "", "", schemaCmd(reg, "register", "common", "--file", writeFile(t, dir, "common.proto", commonProto))...)
	order := writeFile(t, dir, "order.proto", orderProto)
	r = fails(t, exitError, "", "", schemaCmd(reg, "register", "orders-proto", "--file", order)...)
	mustContain(t, "register without its reference", r.stderr, "spool: invalid schema", "(42201)")
	r = ok(t, "", "", schemaCmd(reg, "register", "orders-proto", "--file", order, "--ref", "acme/common.proto=common:1")...)
	mustContain(t, "register proto", r.stdout, "registered orders-proto version 1, id 5")
	r = ok(t, "", "", schemaCmd(reg, "register", "orders-proto", "--file", order, "--ref", "acme/common.proto=common:latest")...)
	mustContain(t, "register proto again", r.stdout, "already has this schema: version 1, id 5")

	// get: the latest, a version, raw, by id, JSON.
	r = ok(t, "", "", schemaCmd(reg, "get", "orders-value")...)
	mustContain(t, "get latest", r.stdout, "Subject:  orders-value\n", "Version:  2\n", "ID:       2\n", "Type:     AVRO\n",
		"\n{\n  \"type\": \"record\",", `"default": "EUR"`) // sent on one line, shown indented
	r = ok(t, "", "", schemaCmd(reg, "get", "orders-value", "--version", "1", "--raw")...)
	if r.stdout != orderV1 {
		t.Errorf("get --raw: %q, want the text as registered", r.stdout)
	}
	r = ok(t, "", "", schemaCmd(reg, "get", "orders-proto")...)
	mustContain(t, "get proto", r.stdout, "Type:        PROTOBUF", "References:  acme/common.proto=common:1", "\n"+orderProto)
	r = ok(t, "", "", schemaCmd(reg, "get", "--id", "5")...)
	mustContain(t, "get --id", r.stdout, "ID:", "5", "Used by:     orders-proto version 1", "message Order {")
	if strings.Contains(r.stdout, "Subject:") {
		t.Errorf("get --id shows a subject: %s", r.stdout)
	}
	r = ok(t, "", "", schemaCmd(reg, "get", "users-value", "-o", "json")...)
	var sv subjectVersion
	if err := json.Unmarshal([]byte(r.stdout), &sv); err != nil || sv.Subject != "users-value" || sv.Version != 1 || sv.ID != 3 || sv.SchemaType != "JSON" || sv.Schema != userJSON {
		t.Errorf("get json: %+v, %v", sv, err)
	}

	// list, and --prefix.
	ok(t, "", "", schemaCmd(reg, "config", "orders-value", "--set", "full")...)
	r = ok(t, "", "", schemaCmd(reg, "list")...)
	ls := lines(r.stdout)
	if len(ls) != 6 {
		t.Fatalf("list: %q", r.stdout)
	}
	mustContain(t, "list", r.stdout, "SUBJECT", "VERSIONS", "LATEST", "ID", "TYPE", "COMPATIBILITY")
	for _, want := range [][]string{
		{"common", "1", "1", "4", "PROTOBUF", "BACKWARD", "(global)"},
		{"orders-proto", "1", "1", "5", "PROTOBUF", "BACKWARD", "(global)"},
		{"orders-value", "1,2", "2", "2", "AVRO", "FULL"},
		{"users-value", "1", "1", "3", "JSON", "BACKWARD", "(global)"},
	} {
		found := false
		for _, l := range ls[1:] {
			found = found || slicesEqual(strings.Fields(l), want)
		}
		if !found {
			t.Errorf("list: no line %q:\n%s", want, r.stdout)
		}
	}
	r = ok(t, "", "", schemaCmd(reg, "list", "--prefix", "orders-", "-o", "json")...)
	var list []subjectJSON
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 2 {
		t.Fatalf("list json: %v\n%s", err, r.stdout)
	}
	if l := list[1]; l.Subject != "orders-value" || !slicesEqual(l.Versions, []int{1, 2}) || l.LatestID != 2 || l.Type != "AVRO" || l.Compatibility != "FULL" || l.CompatibilityGlobal {
		t.Errorf("list json: %+v", l)
	}
}

func slicesEqual[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSchemaCheck(t *testing.T) {
	reg := startRegistry(t)
	dir := t.TempDir()
	v1 := writeFile(t, dir, "v1.avsc", orderV1)
	v2 := writeFile(t, dir, "v2.avsc", orderV2)
	bad := writeFile(t, dir, "bad.avsc", orderBad)

	// A subject without versions: compatible, once the schema parses.
	r := ok(t, "", "", schemaCmd(reg, "check", "orders-value", "--file", bad)...)
	mustContain(t, "check new subject", r.stdout, "compatible: subject orders-value has no versions yet")
	r = fails(t, exitError, "", "", schemaCmd(reg, "check", "orders-value", "--file", writeFile(t, dir, "junk.avsc", `{"type":"recrod"}`))...)
	mustContain(t, "check junk", r.stderr, "spool: invalid schema", "(42201)")

	ok(t, "", "", schemaCmd(reg, "register", "orders-value", "--file", v1)...)
	r = ok(t, "", "", schemaCmd(reg, "check", "orders-value", "--file", v2)...)
	if r.stdout != "compatible with orders-value (level BACKWARD, checked against version 1)\n" {
		t.Errorf("check compatible: %q", r.stdout)
	}

	// A field added without a default breaks BACKWARD: exit 6, the rule.
	r = fails(t, exitIncompatible, "", "", schemaCmd(reg, "check", "orders-value", "--file", bad)...)
	mustContain(t, "check incompatible stdout", r.stdout,
		"incompatible with orders-value (level BACKWARD, checked against version 1):\n  - version 1",
		"READER_FIELD_MISSING_DEFAULT_VALUE", "customer")
	if r.stderr != "spool: the schema is incompatible with subject 'orders-value' (1 rule broken)\n" {
		t.Errorf("check incompatible stderr %q", r.stderr)
	}
	r = fails(t, exitIncompatible, "", "", schemaCmd(reg, "check", "orders-value", "--file", bad, "-o", "json")...)
	var res checkJSON
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.Compatible || !res.SubjectExists || res.Level != "BACKWARD" ||
		!slicesEqual(res.Checked, []int{1}) || len(res.Messages) != 1 || !strings.Contains(res.Messages[0], "READER_FIELD_MISSING_DEFAULT_VALUE") {
		t.Errorf("check json: %+v, %v", res, err)
	}
	// Registering it is refused the same way.
	r = fails(t, exitIncompatible, "", "", schemaCmd(reg, "register", "orders-value", "--file", bad)...)
	mustContain(t, "register incompatible", r.stderr, "spool: schema being registered is incompatible", "READER_FIELD_MISSING_DEFAULT_VALUE", "(409)")

	// Against one version; transitive levels name every version.
	ok(t, "", "", schemaCmd(reg, "register", "orders-value", "--file", v2)...)
	r = ok(t, "", "", schemaCmd(reg, "check", "orders-value", "--file", v2, "--version", "latest")...)
	mustContain(t, "check --version latest", r.stdout, "checked against version 2")
	fails(t, exitIncompatible, "", "", schemaCmd(reg, "check", "orders-value", "--file", bad, "--version", "1")...)
	ok(t, "", "", schemaCmd(reg, "config", "orders-value", "--set", "backward_transitive")...)
	r = fails(t, exitIncompatible, "", "", schemaCmd(reg, "check", "orders-value", "--file", bad)...)
	mustContain(t, "check transitive", r.stdout, "(level BACKWARD_TRANSITIVE, checked against versions 1,2):", "  - version 2", "  - version 1")
	mustContain(t, "check transitive stderr", r.stderr, "(2 rules broken)")
	ok(t, "", "", schemaCmd(reg, "config", "orders-value", "--set", "NONE")...)
	r = ok(t, "", "", schemaCmd(reg, "check", "orders-value", "--file", bad)...)
	mustContain(t, "check NONE", r.stdout, "compatible with orders-value (level NONE: nothing is checked)")

	r = fails(t, exitNotFound, "", "", schemaCmd(reg, "check", "orders-value", "--file", v2, "--version", "9")...)
	if r.stderr != "spool: version 9 not found for subject 'orders-value' (40402)\n" {
		t.Errorf("check --version 9: stderr %q", r.stderr)
	}
	fails(t, exitUsage, "", "", schemaCmd(reg, "check", "orders-value", "--file", v2, "--version", "two")...)
	fails(t, exitUsage, "", "", schemaCmd(reg, "check", "orders-value")...)
}

func TestSchemaDiff(t *testing.T) {
	reg := startRegistry(t)
	dir := t.TempDir()
	ok(t, "", "", schemaCmd(reg, "register", "orders-value", "--file", writeFile(t, dir, "v1.avsc", orderV1))...)
	ok(t, "", "", schemaCmd(reg, "register", "orders-value", "--file", writeFile(t, dir, "v2.avsc", orderV2))...)

	r := ok(t, "", "", schemaCmd(reg, "diff", "orders-value", "1", "latest")...)
	want := `--- orders-value version 1 (id 1, AVRO)
+++ orders-value version 2 (id 2, AVRO)
@@ -7,6 +7,11 @@
     {
       "name": "amount",
       "type": "long"
+    },
+    {
+      "default": "EUR",
+      "name": "currency",
+      "type": "string"
     }
   ],
   "name": "Order",

Compatibility at the global level, BACKWARD:
  backward (version 2 reads data written with version 1): compatible
  forward (version 1 reads data written with version 2): compatible
`
	if r.stdout != want {
		t.Errorf("diff:\n%s\nwant:\n%s", r.stdout, want)
	}

	// Under FORWARD, registering a field without a default is allowed;
	// then version 2 cannot read version 3's data, version 3 cannot read
	// version 2's.
	ok(t, "", "", schemaCmd(reg, "config", "orders-value", "--set", "forward")...)
	ok(t, "", "", schemaCmd(reg, "register", "orders-value", "--file", writeFile(t, dir, "bad.avsc", orderBad))...)
	r = ok(t, "", "", schemaCmd(reg, "diff", "orders-value", "2", "3")...)
	mustContain(t, "diff 2 3", r.stdout,
		"-      \"default\": \"EUR\",\n-      \"name\": \"currency\",\n+      \"name\": \"customer\",\n",
		"Compatibility at the subject's level, FORWARD:\n",
		"  backward (version 3 reads data written with version 2): incompatible\n    - READER_FIELD_MISSING_DEFAULT_VALUE",
		"  forward (version 2 reads data written with version 3): compatible\n")
	ok(t, "", "", schemaCmd(reg, "config", "orders-value", "--set", "full")...)
	r = ok(t, "", "", schemaCmd(reg, "diff", "orders-value", "2", "3")...)
	mustContain(t, "diff FULL", r.stdout, "  backward (version 3 reads data written with version 2) and forward (version 2 reads data written with version 3): incompatible\n    - READER_FIELD_MISSING_DEFAULT_VALUE")

	r = ok(t, "", "", schemaCmd(reg, "diff", "orders-value", "2", "2")...)
	mustContain(t, "diff same", r.stdout, "versions 2 and 2 of orders-value are the same (after pretty-printing)\n")

	// Protobuf text as it is.
	ok(t, "", "", schemaCmd(reg, "register", "p", "--file", writeFile(t, dir, "a.proto", "syntax = \"proto3\";\nmessage A {\n  string x = 1;\n}\n"))...)
	ok(t, "", "", schemaCmd(reg, "register", "p", "--file", writeFile(t, dir, "b.proto", "syntax = \"proto3\";\nmessage A {\n  string x = 1;\n  int64 y = 2;\n}\n"))...)
	r = ok(t, "", "", schemaCmd(reg, "diff", "p", "1", "2")...)
	mustContain(t, "diff proto", r.stdout, "@@ -1,4 +1,5 @@\n syntax = \"proto3\";\n message A {\n   string x = 1;\n+  int64 y = 2;\n }\n")

	fails(t, exitNotFound, "", "", schemaCmd(reg, "diff", "orders-value", "1", "7")...)
	fails(t, exitUsage, "", "", schemaCmd(reg, "diff", "orders-value", "1")...)
	fails(t, exitUsage, "", "", schemaCmd(reg, "diff", "orders-value", "1", "x")...)
}

func TestSchemaDeleteAndConfig(t *testing.T) {
	reg := startRegistry(t)
	dir := t.TempDir()
	v1 := writeFile(t, dir, "v1.avsc", orderV1)
	v2 := writeFile(t, dir, "v2.avsc", orderV2)
	ok(t, "", "", schemaCmd(reg, "register", "orders-value", "--file", v1)...)
	ok(t, "", "", schemaCmd(reg, "register", "orders-value", "--file", v2)...)
	ok(t, "", "", schemaCmd(reg, "register", "audit-value", "--file", v1)...)

	// config: global, a subject without and with its own level.
	r := ok(t, "", "", schemaCmd(reg, "config")...)
	if r.stdout != "global: BACKWARD\n" {
		t.Errorf("config: %q", r.stdout)
	}
	r = ok(t, "", "", schemaCmd(reg, "config", "orders-value")...)
	if r.stdout != "orders-value: BACKWARD (the global level; the subject has none of its own)\n" {
		t.Errorf("config orders-value: %q", r.stdout)
	}
	r = ok(t, "", "", schemaCmd(reg, "config", "orders-value", "--set", "full_transitive")...)
	mustContain(t, "config --set", r.stderr, "compatibility level of orders-value set to FULL_TRANSITIVE")
	r = ok(t, "", "", schemaCmd(reg, "config", "orders-value", "-o", "json")...)
	if strings.Join(strings.Fields(r.stdout), "") != `{"compatibility":"FULL_TRANSITIVE","global":false,"subject":"orders-value"}` {
		t.Errorf("config json: %q", r.stdout)
	}
	r = ok(t, "", "", schemaCmd(reg, "config", "--set", "forward")...)
	mustContain(t, "config --set global", r.stderr, "global compatibility level set to FORWARD")
	r = ok(t, "", "", schemaCmd(reg, "config", "audit-value")...)
	mustContain(t, "config audit-value", r.stdout, "audit-value: FORWARD (the global level")
	r = fails(t, exitUsage, "", "", schemaCmd(reg, "config", "--set", "sideways")...)
	mustContain(t, "config --set sideways", r.stderr, `--set: "sideways" is not a compatibility level`)

	// Delete a version (soft), then for good.
	r = ok(t, "", "", schemaCmd(reg, "delete", "orders-value", "--version", "1")...)
	mustContain(t, "delete --version", r.stderr, "soft-deleted orders-value version 1")
	r = ok(t, "", "", schemaCmd(reg, "list", "--deleted")...)
	mustContain(t, "list --deleted", r.stdout, "DELETED")
	for _, l := range lines(r.stdout) {
		if f := strings.Fields(l); f[0] == "orders-value" && (f[1] != "2" || f[len(f)-1] != "1") {
			t.Errorf("list --deleted: %q", l)
		}
	}
	r = ok(t, "", "", schemaCmd(reg, "get", "--id", "1")...) // still readable by id
	mustContain(t, "get --id of a soft-deleted version", r.stdout, "audit-value version 1")
	r = ok(t, "", "", schemaCmd(reg, "delete", "orders-value", "--version", "1", "--permanent")...)
	mustContain(t, "delete --version --permanent", r.stderr, "permanently deleted orders-value version 1")
	fails(t, exitNotFound, "", "", schemaCmd(reg, "get", "orders-value", "--version", "1")...)

	// Delete a subject: soft, then --permanent; --permanent straight away.
	r = ok(t, "", "", schemaCmd(reg, "delete", "orders-value")...)
	mustContain(t, "delete", r.stderr, "soft-deleted subject orders-value: version 2")
	r = ok(t, "", "", schemaCmd(reg, "list")...)
	if strings.Contains(r.stdout, "orders-value") {
		t.Errorf("list after delete: %s", r.stdout)
	}
	r = ok(t, "", "", schemaCmd(reg, "list", "--deleted", "-o", "json")...)
	var list []subjectJSON
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 2 || list[1].Subject != "orders-value" ||
		len(list[1].Versions) != 0 || !slicesEqual(list[1].DeletedVersions, []int{2}) || list[1].LatestVersion != 2 {
		t.Errorf("list --deleted json: %v %+v", err, list)
	}
	r = ok(t, "", "", schemaCmd(reg, "delete", "orders-value", "--permanent")...)
	mustContain(t, "delete --permanent", r.stderr, "permanently deleted subject orders-value: version 2")
	r = ok(t, "", "", schemaCmd(reg, "delete", "audit-value", "--permanent")...)
	mustContain(t, "delete --permanent of a live subject", r.stderr, "permanently deleted subject audit-value: version 1")
	r = ok(t, "", "", schemaCmd(reg, "list", "--deleted")...)
	if len(lines(r.stdout)) != 1 {
		t.Errorf("list --deleted after permanent deletes: %q", r.stdout)
	}
	r = fails(t, exitNotFound, "", "", schemaCmd(reg, "delete", "orders-value")...)
	if r.stderr != "spool: subject 'orders-value' not found (40401)\n" {
		t.Errorf("delete unknown: %q", r.stderr)
	}

	// --version latest --permanent: the latest live version goes.
	ok(t, "", "", schemaCmd(reg, "register", "tmp", "--file", v1)...)
	ok(t, "", "", schemaCmd(reg, "register", "tmp", "--file", v2)...)
	r = ok(t, "", "", schemaCmd(reg, "delete", "tmp", "--version", "latest", "--permanent")...)
	mustContain(t, "delete --version latest --permanent", r.stderr, "permanently deleted tmp version 2")
	r = ok(t, "", "", schemaCmd(reg, "list", "--deleted", "-o", "json")...)
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 || !slicesEqual(list[0].Versions, []int{1}) || len(list[0].DeletedVersions) != 0 {
		t.Errorf("list after deleting tmp's latest: %v %+v", err, list)
	}
}

func TestSchemaErrors(t *testing.T) {
	reg := startRegistry(t)
	dir := t.TempDir()

	r := fails(t, exitNotFound, "", "", schemaCmd(reg, "get", "nope")...)
	if r.stderr != "spool: subject 'nope' not found (40401)\n" {
		t.Errorf("get unknown subject: stderr %q", r.stderr)
	}
	r = fails(t, exitNotFound, "", "", schemaCmd(reg, "get", "--id", "42")...)
	mustContain(t, "get unknown id", r.stderr, "spool: schema 42 not found (40403)")

	r = fails(t, exitError, "", "", schemaCmd(reg, "register", "x", "--file", filepath.Join(dir, "missing.avsc"))...)
	mustContain(t, "missing file", r.stderr, "spool: reading the schema: open ", "missing.avsc: no such file or directory")
	r = fails(t, exitError, "", "", schemaCmd(reg, "register", "x", "--file", writeFile(t, dir, "empty.avsc", "\n"))...)
	mustContain(t, "empty file", r.stderr, "empty.avsc is empty")
	r = fails(t, exitError, "", "", schemaCmd(reg, "register", "x", "--file", writeFile(t, dir, "bad.avsc", "{not json"))...)
	mustContain(t, "bad schema", r.stderr, "spool: invalid schema", "(42201)")
	r = fails(t, exitError, "", "", schemaCmd(reg, "register", "x", "--file", writeFile(t, dir, "o.proto", orderProto), "--ref", "acme/common.proto=nope:1")...)
	mustContain(t, "reference to nothing", r.stderr, "(42201)")
	r = fails(t, exitNotFound, "", "", schemaCmd(reg, "register", "x", "--file", writeFile(t, dir, "o2.proto", orderProto), "--ref", "acme/common.proto=nope:latest")...)
	mustContain(t, "reference to latest of nothing", r.stderr, "spool: --ref acme/common.proto=nope:latest: subject 'nope' not found (40401)")

	fails(t, exitUsage, "", "", schemaCmd(reg, "register", "x")...)
	fails(t, exitUsage, "", "", schemaCmd(reg, "register", "x", "--file", "f.avsc", "--type", "xml")...)
	fails(t, exitUsage, "", "", schemaCmd(reg, "register", "x", "--file", "f.avsc", "--ref", "nameonly")...)
	fails(t, exitUsage, "", "", schemaCmd(reg, "register", "x", "--file", "f.avsc", "--ref", "a=b:0")...)
	fails(t, exitUsage, "", "", schemaCmd(reg, "get")...)
	fails(t, exitUsage, "", "", schemaCmd(reg, "get", "x", "--id", "1")...)
	fails(t, exitUsage, "", "", schemaCmd(reg, "get", "--id", "1", "--version", "2")...)
	fails(t, exitUsage, "", "", schemaCmd(reg, "delete", "x", "--version", "0")...)
	fails(t, exitUsage, "", "", schemaCmd("ftp://nowhere", "list")...)
	r = fails(t, exitUsage, "", "", schemaCmd(reg, "lsit")...)
	mustContain(t, "unknown subcommand", r.stderr, `(did you mean "list"?)`)

	// Nothing listening: a clear error, exit 5; the next URL is tried.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close()
	r = fails(t, exitUnavailable, "", "", schemaCmd(down, "list")...)
	mustContain(t, "unreachable", r.stderr, "spool: schema registry unreachable: ", "connection refused", "(unavailable)")
	ok(t, "", "", schemaCmd(down+","+reg, "list")...)
	t.Setenv("SPOOL_SCHEMA_REGISTRY", down+", "+strings.TrimPrefix(reg, "http://"))
	ok(t, "", "", "schema", "list")

	// Something that is not a registry.
	srv := startServer(t)
	r = fails(t, exitError, "", "", schemaCmd(srv, "list")...)
	mustContain(t, "not a registry", r.stderr, "does not answer as a schema registry: HTTP 404")
}

func TestSchemaExitCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{&registryError{Code: 40401}, exitNotFound},
		{&registryError{Code: 40403}, exitNotFound},
		{&registryError{Code: 409}, exitIncompatible},
		{&registryError{Code: 42201}, exitError},
		{&registryError{Code: 50002}, exitUnavailable},
		{&incompatibleError{subject: "x"}, exitIncompatible},
		{&registryUnreachableError{errors.New("refused")}, exitUnavailable},
	} {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
	for in, want := range map[string]string{
		"Subject 'x' not found.": "subject 'x' not found (40401)",
		"HTTP 404 Not Found":     "HTTP 404 Not Found (40401)",
		"":                       "schema registry error (40401)",
	} {
		if got := (&registryError{Code: 40401, Message: in}).Error(); got != want {
			t.Errorf("registryError(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSchemaReaders: a subscription created with --reads declares its
// reader schema; a registration it cannot read is refused naming it, and
// `spool schema usage` shows the versions produced and who reads them.
func TestSchemaReaders(t *testing.T) {
	s := spooltest.StartServer(t)
	srv, reg := s.URL(), "http://"+s.Server().SchemaRegistryAddr()
	dir := t.TempDir()
	v1 := writeFile(t, dir, "v1.avsc", orderV1)
	ok(t, srv, "", schemaCmd(reg, "register", "orders-value", "-f", v1)...)
	ok(t, srv, "", "topic", "create", "orders")
	fails(t, 2, srv, "", "sub", "create", "orders", "x", "--reads", "orders-value")
	ok(t, srv, "", "sub", "create", "orders", "billing", "--registry", reg, "--reads", "orders-value:latest")
	ok(t, srv, "", "sub", "create", "orders", "audit", "--registry", reg, "--reads", "orders-value", "--reads-file", v1)
	// A version that drops a field the readers need without a default is
	// incompatible for them even under NONE.
	ok(t, srv, "", schemaCmd(reg, "config", "orders-value", "--set", "none")...)
	bad := writeFile(t, dir, "bad.avsc", `{"type":"record","name":"Order","namespace":"com.acme","fields":[{"name":"id","type":"string"}]}`)
	r := fails(t, exitIncompatible, srv, "", schemaCmd(reg, "check", "orders-value", "-f", bad)...)
	if !strings.Contains(r.stdout+r.stderr, "orders/audit") || !strings.Contains(r.stdout+r.stderr, "orders/billing") {
		t.Fatalf("check names no reader:\n%s%s", r.stdout, r.stderr)
	}
	fails(t, exitIncompatible, srv, "", schemaCmd(reg, "register", "orders-value", "-f", bad)...)
	r = ok(t, srv, "", schemaCmd(reg, "usage", "orders-value")...)
	if !strings.Contains(r.stdout, "orders/audit, orders/billing") {
		t.Fatalf("usage:\n%s", r.stdout)
	}
}
