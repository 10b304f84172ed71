// Package auth carries who a connection is: the principal a front end
// established (today: the subject of a verified TLS client certificate,
// see internal/tlsutil.PrincipalOf) for the handlers that will authorize
// requests. It decides nothing yet.
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
