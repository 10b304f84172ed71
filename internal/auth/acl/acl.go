// Package acl is Spool's authorization: rules of principal × resource
// pattern × operation, each allowing or denying, kept in the broker's
// replicated "acl" space (so a cluster's metadata group orders and
// replicates them with the catalog). Once authorization is enabled every
// request is denied unless a rule allows it and none denies it, as
// Kafka's authorizer decides; super users are allowed everything.
//
// Resources are topics, groups (a Kafka consumer or share group is a
// Spool subscription: one namespace), schema subjects and the cluster.
// Operations are publish, consume, describe and admin (and all); publish,
// consume and admin each imply describe. Rules created through Kafka's
// CreateAcls keep the Kafka operation they were made with, so that
// DescribeAcls shows them as created (docs/security.md maps the two).
package acl

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/spoolmq/spool/internal/auth"
	"github.com/spoolmq/spool/internal/errs"
)

// Resource is a kind of resource a rule names.
type Resource string

// Resources.
const (
	Topic   Resource = "topic"
	Group   Resource = "group" // a subscription, a Kafka consumer or share group
	Subject Resource = "subject"
	Cluster Resource = "cluster"
)

// ClusterName is the only name of the cluster resource (Kafka's).
const ClusterName = "kafka-cluster"

// Pattern says how a rule's name matches resources.
type Pattern string

// Patterns.
const (
	Literal  Pattern = "literal"  // the name itself; "*" is every resource of the kind
	Prefixed Pattern = "prefixed" // every name that starts with it
)

// Operation is what a principal does to a resource.
type Operation string

// Operations.
const (
	Publish  Operation = "publish"
	Consume  Operation = "consume"
	Describe Operation = "describe"
	Admin    Operation = "admin"
	All      Operation = "all"
)

// Operations lists the operations a rule may name but All, in the order
// describing a principal's operations uses.
var Operations = []Operation{Publish, Consume, Describe, Admin}

// Permission is whether a rule allows or denies.
type Permission string

// Permissions.
const (
	Allow Permission = "allow"
	Deny  Permission = "deny"
)

// Bounds.
const (
	MaxRules     = 10000
	MaxNameBytes = 255
)

// Wildcards of principals, hosts and literal names.
const (
	AnyPrincipal = "User:*"
	AnyHost      = "*"
	AnyName      = "*"
)

// Rule is one access control entry.
type Rule struct {
	Principal  string     `json:"principal"` // "User:<name>", or "User:*" for everyone
	Host       string     `json:"host"`      // a client IP address, or "*"
	Resource   Resource   `json:"resource"`
	Pattern    Pattern    `json:"pattern"`
	Name       string     `json:"name"`
	Operation  Operation  `json:"operation"`
	Permission Permission `json:"permission"`
	// KafkaOperation is the Kafka operation the rule was created with
	// when it is not Operation's own (CREATE, DELETE, ALTER,
	// ALTER_CONFIGS, DESCRIBE_CONFIGS, CLUSTER_ACTION, IDEMPOTENT_WRITE).
	KafkaOperation string `json:"kafka_operation,omitempty"`
}

// PrincipalOf returns the rule principal of an authenticated principal.
func PrincipalOf(name string) string { return "User:" + name }

// Normalize checks a rule and fills its defaults: a principal without a
// type is a user's, an empty host is "*", an empty pattern literal, an
// empty permission allow, and the cluster's name is ClusterName.
func (r Rule) Normalize() (Rule, error) {
	if r.Principal == "" {
		return r, errs.New(errs.InvalidArgument, "a rule needs a principal (User:<name> or User:*)")
	}
	if typ, name, ok := strings.Cut(r.Principal, ":"); !ok {
		r.Principal = PrincipalOf(r.Principal)
	} else if typ != "User" || name == "" {
		return r, errs.New(errs.InvalidArgument, "principal %q: only User:<name> principals exist", r.Principal)
	}
	if len(r.Principal) > MaxNameBytes+5 {
		return r, errs.New(errs.InvalidArgument, "principal is longer than %d bytes", MaxNameBytes)
	}
	switch r.Host {
	case "":
		r.Host = AnyHost
	case AnyHost:
	default:
		a, err := netip.ParseAddr(r.Host)
		if err != nil {
			return r, errs.New(errs.InvalidArgument, "host %q: an IP address or *", r.Host)
		}
		r.Host = a.Unmap().String()
	}
	switch r.Resource {
	case Topic, Group, Subject:
	case Cluster:
		if r.Name == "" || r.Name == AnyName {
			r.Name = ClusterName
		}
		if r.Name != ClusterName {
			return r, errs.New(errs.InvalidArgument, "the cluster resource is named %q", ClusterName)
		}
	default:
		return r, errs.New(errs.InvalidArgument, "resource type %q: topic, group, subject or cluster", r.Resource)
	}
	switch r.Pattern {
	case "":
		r.Pattern = Literal
	case Literal, Prefixed:
	default:
		return r, errs.New(errs.InvalidArgument, "pattern %q: literal or prefixed", r.Pattern)
	}
	if r.Resource == Cluster && r.Pattern != Literal {
		return r, errs.New(errs.InvalidArgument, "the cluster resource is named literally")
	}
	if r.Name == "" || len(r.Name) > MaxNameBytes {
		return r, errs.New(errs.InvalidArgument, "a rule names a resource in 1 to %d bytes", MaxNameBytes)
	}
	switch r.Operation {
	case Publish, Consume, Describe, Admin, All:
	default:
		return r, errs.New(errs.InvalidArgument, "operation %q: publish, consume, describe, admin or all", r.Operation)
	}
	switch r.Permission {
	case "":
		r.Permission = Allow
	case Allow, Deny:
	default:
		return r, errs.New(errs.InvalidArgument, "permission %q: allow or deny", r.Permission)
	}
	if r.KafkaOperation != "" {
		op, ok := kafkaOps[r.KafkaOperation]
		if !ok || op != r.Operation {
			return r, errs.New(errs.InvalidArgument, "Kafka operation %q does not map to %s", r.KafkaOperation, r.Operation)
		}
		if r.KafkaOperation == CanonicalKafkaOperation(r.Operation) {
			r.KafkaOperation = ""
		}
	}
	return r, nil
}

// kafkaOps maps Kafka's ACL operations (kmsg.ACLOperation names) to
// Spool's.
var kafkaOps = map[string]Operation{
	"READ": Consume, "WRITE": Publish, "DESCRIBE": Describe, "ALL": All,
	"ALTER": Admin, "CREATE": Admin, "DELETE": Admin, "ALTER_CONFIGS": Admin, "CLUSTER_ACTION": Admin,
	"DESCRIBE_CONFIGS": Describe, "IDEMPOTENT_WRITE": Publish,
}

// KafkaOperation returns the Spool operation of a Kafka ACL operation
// name, ok false for one Spool has no counterpart of.
func KafkaOperation(name string) (Operation, bool) {
	op, ok := kafkaOps[name]
	return op, ok
}

// CanonicalKafkaOperation is the Kafka operation a Spool operation is
// shown as.
func CanonicalKafkaOperation(op Operation) string {
	switch op {
	case Consume:
		return "READ"
	case Publish:
		return "WRITE"
	case Describe:
		return "DESCRIBE"
	case Admin:
		return "ALTER"
	}
	return "ALL"
}

// ShownKafkaOperation is the Kafka operation a rule is shown as.
func (r Rule) ShownKafkaOperation() string {
	if r.KafkaOperation != "" {
		return r.KafkaOperation
	}
	return CanonicalKafkaOperation(r.Operation)
}

// covers reports whether a rule's operation covers op: all covers every
// operation; describe is implied by the others.
func covers(rule, op Operation) bool {
	return rule == op || rule == All || (op == Describe && rule != Describe)
}

// appliesTo reports whether the rule names the resource.
func (r *Rule) appliesTo(res Resource, name string) bool {
	if r.Resource != res {
		return false
	}
	if r.Pattern == Prefixed {
		return strings.HasPrefix(name, r.Name)
	}
	return r.Name == name || r.Name == AnyName
}

// Filter selects rules, as DescribeAcls and DeleteAcls do: an empty field
// matches anything. Pattern "match" selects the rules that apply to the
// resource Name (literal, the wildcard, and prefixes of it).
type Filter struct {
	Principal      string
	Host           string
	Resource       Resource
	Pattern        string // "", "literal", "prefixed" or "match"
	Name           string
	Operation      Operation
	KafkaOperation string // matches the operation a rule is shown as in Kafka
	Permission     Permission
}

// Matches reports whether a rule passes the filter.
func (f *Filter) Matches(r *Rule) bool {
	switch {
	case f.Principal != "" && f.Principal != r.Principal,
		f.Host != "" && f.Host != r.Host,
		f.Resource != "" && f.Resource != r.Resource,
		f.Operation != "" && f.Operation != r.Operation,
		f.KafkaOperation != "" && f.KafkaOperation != r.ShownKafkaOperation(),
		f.Permission != "" && f.Permission != r.Permission:
		return false
	}
	switch f.Pattern {
	case "":
		return f.Name == "" || f.Name == r.Name
	case "match":
		if f.Name == "" {
			return true
		}
		return r.appliesTo(r.Resource, f.Name)
	default:
		return string(r.Pattern) == f.Pattern && (f.Name == "" || f.Name == r.Name)
	}
}

// Request is one authorization question.
type Request struct {
	Principal string // authenticated principal, "" anonymous
	Host      string // the client's IP address
	Resource  Resource
	Name      string
	Operation Operation
}

// rulePrincipal is the rule principal of an authenticated principal, an
// anonymous client's ("") being User:ANONYMOUS.
func rulePrincipal(p string) string {
	if p == "" {
		return "User:ANONYMOUS"
	}
	return PrincipalOf(p)
}

// decide answers a request against rules: a deny that applies wins, then
// an allow; nothing applying denies.
func decide(rules []Rule, q Request) bool {
	principal := rulePrincipal(q.Principal)
	allowed := false
	for i := range rules {
		r := &rules[i]
		if (r.Principal != principal && r.Principal != AnyPrincipal) ||
			(r.Host != AnyHost && r.Host != q.Host) ||
			!covers(r.Operation, q.Operation) || !r.appliesTo(q.Resource, q.Name) {
			continue
		}
		if r.Permission == Deny {
			return false
		}
		allowed = true
	}
	return allowed
}

// HostOf returns the IP address of a "host:port" remote address, as rules
// name hosts.
func HostOf(remote string) string {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap().String()
	}
	return remote
}

// Authorizer answers authorization questions; a nil *Authorizer allows
// everything (authorization off). Store.Authorizer makes one.
type Authorizer struct {
	store      *Store
	superUsers map[string]bool

	mu    sync.Mutex
	gen   uint64 // the rules' generation the cache holds answers of
	cache map[Request]bool
}

// maxCache bounds the answers an Authorizer remembers.
const maxCache = 8192

// Allowed answers q.
func (a *Authorizer) Allowed(q Request) bool {
	if a == nil || (q.Principal != "" && a.superUsers[q.Principal]) {
		return true
	}
	rules, gen := a.current()
	a.mu.Lock()
	if a.gen != gen || len(a.cache) >= maxCache {
		a.cache, a.gen = map[Request]bool{}, gen
	}
	ok, hit := a.cache[q]
	a.mu.Unlock()
	if hit {
		return ok
	}
	ok = decide(rules, q)
	a.mu.Lock()
	if a.gen == gen {
		a.cache[q] = ok
	}
	a.mu.Unlock()
	return ok
}

// current returns the rules and their generation.
func (a *Authorizer) current() ([]Rule, uint64) {
	sn := a.store.snap.Load()
	return sn.rules, sn.gen
}

// AllowedOnSome reports whether some rule allows principal op on some
// resource of the kind (Kafka's test for an idempotent producer without
// IDEMPOTENT_WRITE on the cluster: WRITE on any topic). Deny rules are
// not weighed.
func (a *Authorizer) AllowedOnSome(principal, host string, res Resource, op Operation) bool {
	if a == nil || (principal != "" && a.superUsers[principal]) {
		return true
	}
	p := rulePrincipal(principal)
	rules, _ := a.current()
	for i := range rules {
		r := &rules[i]
		if r.Permission == Allow && r.Resource == res && (r.Principal == p || r.Principal == AnyPrincipal) &&
			(r.Host == AnyHost || r.Host == host) && covers(r.Operation, op) {
			return true
		}
	}
	return false
}

// Check answers for the principal and host ctx carries (auth.Principal,
// auth.Host): nil, or a PermissionDenied error naming what was refused.
func (a *Authorizer) Check(ctx context.Context, res Resource, name string, op Operation) error {
	if a == nil {
		return nil
	}
	q := Request{Principal: auth.Principal(ctx), Host: auth.Host(ctx), Resource: res, Name: name, Operation: op}
	if a.Allowed(q) {
		return nil
	}
	return Denied(q)
}

// Denied is the error of a refused request.
func Denied(q Request) error {
	who := q.Principal
	if who == "" {
		who = "an anonymous client"
	}
	if q.Resource == Cluster {
		return errs.New(errs.PermissionDenied, "%s may not %s the cluster", who, q.Operation)
	}
	return errs.New(errs.PermissionDenied, "%s may not %s %s %q", who, q.Operation, q.Resource, q.Name)
}

// Operations returns the operations a principal has on a resource, in
// the order of Operations (DescribeCluster's and DescribeGroups'
// authorized operations).
func (a *Authorizer) Operations(principal, host string, res Resource, name string) []Operation {
	out := make([]Operation, 0, len(Operations))
	for _, op := range Operations {
		if a.Allowed(Request{Principal: principal, Host: host, Resource: res, Name: name, Operation: op}) {
			out = append(out, op)
		}
	}
	return out
}

// Enabled reports whether authorization is on.
func (a *Authorizer) Enabled() bool { return a != nil }

// sortRules orders rules for listing.
func sortRules(rs []Rule) {
	slices.SortFunc(rs, func(a, b Rule) int {
		for _, c := range []int{
			strings.Compare(string(a.Resource), string(b.Resource)), strings.Compare(a.Name, b.Name),
			strings.Compare(string(a.Pattern), string(b.Pattern)), strings.Compare(a.Principal, b.Principal),
			strings.Compare(a.Host, b.Host), strings.Compare(string(a.Operation), string(b.Operation)),
			strings.Compare(a.KafkaOperation, b.KafkaOperation), strings.Compare(string(a.Permission), string(b.Permission)),
		} {
			if c != 0 {
				return c
			}
		}
		return 0
	})
}
