package kafka

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/xdg-go/scram"
)

// SASL mechanisms.
const (
	mechPlain  = "PLAIN"
	mechSHA256 = "SCRAM-SHA-256"
	mechSHA512 = "SCRAM-SHA-512"
)

// Authenticator checks SASL credentials (internal/auth/users.Store).
type Authenticator interface {
	// CheckPassword verifies a PLAIN password.
	CheckPassword(user, password string) bool
	// Credentials returns a user's SCRAM credential for a mechanism.
	Credentials(mechanism, user string) (scram.StoredCredentials, error)
}

// saslState is a connection's SASL exchange (SaslHandshake v1, then
// SaslAuthenticate requests).
type saslState struct {
	mech string                    // chosen by SaslHandshake; "": none yet
	conv *scram.ServerConversation // a SCRAM exchange under way
}

// saslOpen are the APIs a connection may use before authenticating.
var saslOpen = map[int16]bool{17: true, 18: true, 36: true}

// mechanisms lists what c may authenticate with: PLAIN only on TLS
// unless allowed without.
func (c *conn) mechanisms() []string {
	if c.s.cfg.Auth == nil {
		return nil
	}
	out := []string{mechSHA256, mechSHA512}
	if _, tlsConn := c.nc.(*tls.Conn); tlsConn || c.s.cfg.AllowPlainWithoutTLS {
		out = append(out, mechPlain)
	}
	return out
}

func (s *Server) saslHandshake(_ context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.SASLHandshakeRequest)
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	resp.SupportedMechanisms = c.mechanisms()
	switch {
	case c.sasl.mech != "" || c.saslDone:
		resp.ErrorCode = kerr.IllegalSaslState.Code
	case !contains(resp.SupportedMechanisms, req.Mechanism):
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		if req.Mechanism == mechPlain && s.cfg.Auth != nil {
			s.logger.Info("kafka SASL PLAIN refused on a connection without TLS (auth.allow-plain-without-tls)",
				"remote", c.nc.RemoteAddr().String())
		}
	default:
		c.sasl.mech = req.Mechanism
	}
	return resp, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (s *Server) saslAuthenticate(_ context.Context, c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.SASLAuthenticateRequest)
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	fail := func(code int16, msg string) (kmsg.Response, error) {
		resp.ErrorCode, resp.ErrorMessage = code, &msg
		c.sasl = saslState{}
		c.closeAfterWrite = true // as Kafka does: the client reconnects
		return resp, nil
	}
	if c.sasl.mech == "" || c.saslDone {
		return fail(kerr.IllegalSaslState.Code, "SaslAuthenticate without a SaslHandshake choosing a mechanism")
	}
	failed := "authentication failed: invalid credentials with SASL mechanism " + c.sasl.mech
	switch c.sasl.mech {
	case mechPlain:
		// authzid NUL authcid NUL passwd (RFC 4616).
		parts := bytes.Split(req.SASLAuthBytes, []byte{0})
		if len(parts) != 3 || len(parts[1]) == 0 || (len(parts[0]) > 0 && !bytes.Equal(parts[0], parts[1])) {
			return fail(kerr.SaslAuthenticationFailed.Code, failed)
		}
		user := string(parts[1])
		if !s.cfg.Auth.CheckPassword(user, string(parts[2])) {
			s.logger.Info("kafka SASL authentication failed", "remote", c.nc.RemoteAddr().String(), "mechanism", mechPlain, "user", user)
			return fail(kerr.SaslAuthenticationFailed.Code, failed)
		}
		c.authenticate(user)
		return resp, nil
	case mechSHA256, mechSHA512:
		first := c.sasl.conv == nil
		if first {
			gen, mech := scram.SHA256, c.sasl.mech
			if mech == mechSHA512 {
				gen = scram.SHA512
			}
			srv, err := gen.NewServer(func(user string) (scram.StoredCredentials, error) {
				return s.cfg.Auth.Credentials(mech, user)
			})
			if err != nil {
				return fail(kerr.SaslAuthenticationFailed.Code, failed)
			}
			c.sasl.conv = srv.NewConversation()
		}
		conv := c.sasl.conv
		out, err := scramStep(conv, c.sasl.mech, first, string(req.SASLAuthBytes))
		if err != nil {
			s.logger.Info("kafka SASL authentication failed", "remote", c.nc.RemoteAddr().String(), "mechanism", c.sasl.mech,
				"user", conv.Username())
			return fail(kerr.SaslAuthenticationFailed.Code, failed)
		}
		resp.SASLAuthBytes = []byte(out)
		if conv.Done() {
			if !conv.Valid() {
				return fail(kerr.SaslAuthenticationFailed.Code, failed)
			}
			c.authenticate(conv.Username())
		}
		return resp, nil
	}
	return fail(kerr.IllegalSaslState.Code, "unknown mechanism")
}

// scramStep takes a SCRAM client message to the conversation, having
// refused what its parser (github.com/xdg-go/scram v1.1.2) panics on: a
// client-first message with an empty GS2 flag (",,n=…") and a client-final
// proof longer than the mechanism's hash. A panic there would end the
// process, before authentication; any other is an authentication failure.
func scramStep(conv *scram.ServerConversation, mech string, first bool, msg string) (out string, err error) {
	size := sha256.Size
	if mech == mechSHA512 {
		size = sha512.Size
	}
	if first {
		// The GS2 header starts with n, y or p=.
		if !strings.HasPrefix(msg, "n,") && !strings.HasPrefix(msg, "y,") && !strings.HasPrefix(msg, "p=") {
			return "", errors.New("SCRAM client-first message without a GS2 header")
		}
	} else if i := strings.LastIndexByte(msg, ','); i >= 0 {
		// The proof is the last field.
		if p, ok := strings.CutPrefix(msg[i+1:], "p="); ok {
			if proof, err := base64.StdEncoding.DecodeString(p); err != nil || len(proof) != size {
				return "", fmt.Errorf("SCRAM proof is not %d bytes in base64", size)
			}
		}
	}
	defer func() {
		if r := recover(); r != nil {
			out, err = "", fmt.Errorf("SCRAM message refused by the parser: %v", r)
		}
	}()
	return conv.Step(msg)
}

// authenticate makes user the connection's principal.
func (c *conn) authenticate(user string) {
	c.principal, c.saslDone, c.sasl = user, true, saslState{}
	c.s.logger.Debug("kafka connection authenticated", "remote", c.nc.RemoteAddr().String(), "principal", user)
}
