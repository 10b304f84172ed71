// Package auth carries who a connection is: the principal a front end
// established (an API key's or SASL user, or the subject of a verified TLS
// client certificate, see internal/tlsutil.PrincipalOf) and the client's
// address, for the handlers that authorize requests (internal/auth/acl).
package auth

import "context"

type principalKey struct{}

// WithPrincipal returns ctx carrying principal p.
func WithPrincipal(ctx context.Context, p string) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// Principal returns the principal ctx carries, "" when the connection is
// anonymous (no TLS, or no verified client certificate).
func Principal(ctx context.Context) string {
	p, _ := ctx.Value(principalKey{}).(string)
	return p
}

type hostKey struct{}

// WithHost returns ctx carrying the client's IP address.
func WithHost(ctx context.Context, host string) context.Context {
	return context.WithValue(ctx, hostKey{}, host)
}

// Host returns the client IP address ctx carries, "" when unknown.
func Host(ctx context.Context) string {
	h, _ := ctx.Value(hostKey{}).(string)
	return h
}
