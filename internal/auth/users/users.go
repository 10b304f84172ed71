// Package users is Spool's user store: users with SCRAM credentials (for
// Kafka's SASL PLAIN and SCRAM-SHA-256/512) and opaque API keys (for the
// native API's bearer tokens), kept in the broker's replicated "auth"
// space, so a cluster's metadata group orders and replicates them with
// the catalog. No password and no API key is ever stored: a user keeps,
// per mechanism, a salt, an iteration count, StoredKey and ServerKey
// (RFC 5802); a key keeps the SHA-256 of its token.
package users

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/xdg-go/scram"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/errs"
)

// Mechanisms, as SASL names them.
const (
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
)

// Bounds and parameters.
const (
	Iterations     = 4096 // PBKDF2 iterations of new credentials (RFC 7677's minimum)
	SaltBytes      = 16
	MaxNameBytes   = 128
	MaxPassword    = 1024
	MinPassword    = 8
	MaxKeysPerUser = 64
	// MaxIterations bounds a stored credential's PBKDF2 iterations: SASL
	// PLAIN derives the key once per attempt.
	MaxIterations = 1 << 20
	// TokenPrefix starts every API key: spool_<id>_<secret>.
	TokenPrefix = "spool_"
	idBytes     = 8  // a key's id: 16 hex digits, its lookup
	secretBytes = 32 // a key's secret
)

// Credential is one mechanism's SCRAM credential of a user.
type Credential struct {
	Salt       []byte `json:"salt"`
	Iterations int    `json:"iterations"`
	StoredKey  []byte `json:"stored_key"`
	ServerKey  []byte `json:"server_key"`
}

// user is a user's record (u/<name>).
type user struct {
	Name    string                `json:"name"`
	Created time.Time             `json:"created"`
	Scram   map[string]Credential `json:"scram"`
}

// key is an API key's record (k/<id>).
type key struct {
	ID      string    `json:"id"`
	User    string    `json:"user"`
	Hash    []byte    `json:"hash"` // SHA-256 of the whole token
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires,omitzero"` // zero: never
	Revoked time.Time `json:"revoked,omitzero"` // zero: not revoked
}

// User is what the store tells of a user: never a secret.
type User struct {
	Name       string    `json:"name"`
	Created    time.Time `json:"created"`
	Mechanisms []string  `json:"mechanisms"`
	Keys       []Key     `json:"keys"`
}

// Key is what the store tells of an API key: never its token or hash.
type Key struct {
	ID      string    `json:"id"`
	User    string    `json:"user"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires,omitzero"`
	Revoked time.Time `json:"revoked,omitzero"`
}

func (k *key) info() Key {
	return Key{ID: k.ID, User: k.User, Created: k.Created, Expires: k.Expires, Revoked: k.Revoked}
}

// Config configures a Store.
type Config struct {
	// Space is the broker's "auth" space.
	Space *broker.Space
	// Now is the time of expiry checks and of new records; nil: time.Now.
	Now func() time.Time
}

// Store is the user store of one node.
type Store struct {
	sp  *broker.Space
	now func() time.Time

	mu    sync.RWMutex
	users map[string]*user // guarded by mu; changed only by ApplySpace's done
	keys  map[string]*key  // by id
}

// New loads the store from its space and makes it the space's applier.
func New(cfg Config) (*Store, error) {
	s := &Store{sp: cfg.Space, now: cfg.Now}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.reload(); err != nil {
		return nil, err
	}
	s.sp.SetApplier(s)
	return s, nil
}

func (s *Store) reload() error {
	us, ks := map[string]*user{}, map[string]*key{}
	err := s.sp.Scan(nil, func(k, v []byte) error {
		switch {
		case strings.HasPrefix(string(k), userPrefix):
			u := &user{}
			if err := json.Unmarshal(v, u); err != nil {
				return fmt.Errorf("auth record %q: %w", k, err)
			}
			us[u.Name] = u
		case strings.HasPrefix(string(k), keyPrefix):
			ky := &key{}
			if err := json.Unmarshal(v, ky); err != nil {
				return fmt.Errorf("auth record %q: %w", k, err)
			}
			ks[ky.ID] = ky
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.users, s.keys = us, ks
	s.mu.Unlock()
	return nil
}

// SpaceRestored implements broker.SpaceApplier.
func (s *Store) SpaceRestored() error { return s.reload() }

// Empty reports whether the store holds no user.
func (s *Store) Empty() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.users) == 0
}

// CheckName checks a user name: 1 to 128 bytes of letters, digits and
// . _ - @ (nothing SASLprep or SCRAM's encoding would change).
func CheckName(name string) error {
	if name == "" || len(name) > MaxNameBytes {
		return errs.New(errs.InvalidArgument, "a user name has 1 to %d characters", MaxNameBytes)
	}
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._-@", c)
		if !ok {
			return errs.New(errs.InvalidArgument, "user name %q: only letters, digits and . _ - @ are allowed", name)
		}
	}
	return nil
}

func checkPassword(p string) error {
	if len(p) < MinPassword || len(p) > MaxPassword {
		return errs.New(errs.InvalidArgument, "a password has %d to %d bytes", MinPassword, MaxPassword)
	}
	return nil
}

func hashGen(mech string) scram.HashGeneratorFcn {
	if mech == ScramSHA512 {
		return scram.SHA512
	}
	return scram.SHA256
}

// hashSize is the size of a mechanism's keys.
func hashSize(mech string) int {
	if mech == ScramSHA512 {
		return sha512.Size
	}
	return sha256.Size
}

// checkCredentials checks a user's credentials as a change carries them:
// known mechanisms, a salt, iterations from 1 to MaxIterations, keys of
// the mechanism's size. A credential that fails here could not be used
// (or would make every PLAIN attempt slow).
func checkCredentials(u *user) error {
	for mech, c := range u.Scram {
		if mech != ScramSHA256 && mech != ScramSHA512 {
			return fmt.Errorf("unknown mechanism %q", mech)
		}
		if len(c.Salt) == 0 || c.Iterations < 1 || c.Iterations > MaxIterations ||
			len(c.StoredKey) != hashSize(mech) || len(c.ServerKey) != hashSize(mech) {
			return fmt.Errorf("%s credential with a salt of %d bytes, %d iterations, keys of %d and %d bytes",
				mech, len(c.Salt), c.Iterations, len(c.StoredKey), len(c.ServerKey))
		}
	}
	return nil
}

// credential derives a mechanism's credential of a password.
func credential(mech, name, password string, salt []byte, iters int) (Credential, error) {
	c, err := hashGen(mech).NewClient(name, password, "")
	if err != nil {
		return Credential{}, errs.New(errs.InvalidArgument, "password: %v", err)
	}
	sc, err := c.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(salt), Iters: iters})
	if err != nil {
		return Credential{}, errs.New(errs.InvalidArgument, "derive the credential: %v", err)
	}
	return Credential{Salt: salt, Iterations: iters, StoredKey: sc.StoredKey, ServerKey: sc.ServerKey}, nil
}

// AddUser creates a user with a password (never stored: only its SCRAM
// credentials are).
func (s *Store) AddUser(name, password string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if err := checkPassword(password); err != nil {
		return err
	}
	u := user{Name: name, Created: s.now().UTC(), Scram: map[string]Credential{}}
	for _, mech := range []string{ScramSHA256, ScramSHA512} {
		salt := make([]byte, SaltBytes)
		rand.Read(salt)
		c, err := credential(mech, name, password, salt, Iterations)
		if err != nil {
			return err
		}
		u.Scram[mech] = c
	}
	return s.decide(change{Op: opAddUser, User: &u})
}

// DeleteUser deletes a user and its API keys.
func (s *Store) DeleteUser(name string) error {
	return s.decide(change{Op: opDeleteUser, Name: name})
}

// NewKey issues an API key for a user, valid for ttl (0: until revoked).
// The token is returned here once and never again.
func (s *Store) NewKey(name string, ttl time.Duration) (string, Key, error) {
	return s.newKey(name, ttl, false)
}

// Rotate issues a new API key for a user and revokes its others in the
// same change: after Rotate only the new token authenticates the user.
func (s *Store) Rotate(name string, ttl time.Duration) (string, Key, error) {
	return s.newKey(name, ttl, true)
}

func (s *Store) newKey(name string, ttl time.Duration, revokeOthers bool) (string, Key, error) {
	if ttl < 0 {
		return "", Key{}, errs.New(errs.InvalidArgument, "a key's lifetime must not be negative")
	}
	id, secret := make([]byte, idBytes), make([]byte, secretBytes)
	rand.Read(id)
	rand.Read(secret)
	token := TokenPrefix + hex.EncodeToString(id) + "_" + base64.RawURLEncoding.EncodeToString(secret)
	h := sha256.Sum256([]byte(token))
	now := s.now().UTC()
	k := key{ID: hex.EncodeToString(id), User: name, Hash: h[:], Created: now}
	if ttl > 0 {
		k.Expires = now.Add(ttl)
	}
	if err := s.decide(change{Op: opAddKey, Key: &k, RevokeOthers: revokeOthers, Time: now}); err != nil {
		return "", Key{}, err
	}
	return token, k.info(), nil
}

// RevokeKey revokes an API key by id.
func (s *Store) RevokeKey(id string) error {
	return s.decide(change{Op: opRevokeKey, Name: id, Time: s.now().UTC()})
}

// Users lists the users and their keys, sorted by name: no secret.
func (s *Store) Users() []User {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]User, 0, len(s.users))
	for _, u := range s.users {
		out = append(out, s.describe(u))
	}
	slices.SortFunc(out, func(a, b User) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Get describes one user.
func (s *Store) Get(name string) (User, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u := s.users[name]
	if u == nil {
		return User{}, false
	}
	return s.describe(u), true
}

func (s *Store) describe(u *user) User {
	out := User{Name: u.Name, Created: u.Created, Keys: []Key{}}
	for m := range u.Scram {
		out.Mechanisms = append(out.Mechanisms, m)
	}
	slices.Sort(out.Mechanisms)
	for _, k := range s.keys {
		if k.User == u.Name {
			out.Keys = append(out.Keys, k.info())
		}
	}
	slices.SortFunc(out.Keys, func(a, b Key) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Authenticate checks an API key's token and returns its user. A token
// that is malformed or unknown, revoked or expired is refused with an
// Unauthenticated error saying which (never repeating the token).
func (s *Store) Authenticate(token string) (string, error) {
	rest, ok := strings.CutPrefix(token, TokenPrefix)
	id, _, ok2 := strings.Cut(rest, "_")
	if !ok || !ok2 || len(id) != 2*idBytes {
		return "", errs.New(errs.Unauthenticated, "malformed API key (expected %s<id>_<secret>)", TokenPrefix)
	}
	h := sha256.Sum256([]byte(token))
	s.mu.RLock()
	k := s.keys[id]
	var kc key
	if k != nil {
		kc = *k
	}
	s.mu.RUnlock()
	if k == nil || subtle.ConstantTimeCompare(kc.Hash, h[:]) != 1 {
		return "", errs.New(errs.Unauthenticated, "unknown API key %s", id)
	}
	if !kc.Revoked.IsZero() {
		return "", errs.New(errs.Unauthenticated, "API key %s was revoked at %s", id, kc.Revoked.Format(time.RFC3339))
	}
	if !kc.Expires.IsZero() && !s.now().Before(kc.Expires) {
		return "", errs.New(errs.Unauthenticated, "API key %s expired at %s", id, kc.Expires.Format(time.RFC3339))
	}
	return kc.User, nil
}

// Credentials returns a user's SCRAM credential for a mechanism (the
// lookup of a SCRAM server conversation).
func (s *Store) Credentials(mech, name string) (scram.StoredCredentials, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u := s.users[name]
	if u == nil {
		return scram.StoredCredentials{}, errs.New(errs.Unauthenticated, "unknown user")
	}
	c, ok := u.Scram[mech]
	if !ok {
		return scram.StoredCredentials{}, errs.New(errs.Unauthenticated, "no %s credential", mech)
	}
	return scram.StoredCredentials{KeyFactors: scram.KeyFactors{Salt: string(c.Salt), Iters: c.Iterations},
		StoredKey: c.StoredKey, ServerKey: c.ServerKey}, nil
}

// CheckPassword verifies a password (SASL PLAIN) against the user's
// SCRAM-SHA-256 credential, in constant time over the derived key.
func (s *Store) CheckPassword(name, password string) bool {
	sc, err := s.Credentials(ScramSHA256, name)
	if err != nil || len(password) > MaxPassword {
		return false
	}
	c, err := credential(ScramSHA256, name, password, []byte(sc.Salt), sc.Iters)
	return err == nil && subtle.ConstantTimeCompare(c.StoredKey, sc.StoredKey) == 1
}
