package server

// AuthConfig is the server's authentication (the auth section of the
// configuration file; docs/config.md, "Users and keys" in
// docs/operations.md).
type AuthConfig struct {
	// Enabled makes every native API request (but /healthz, /readyz and
	// /metrics) need a principal — an API key (Authorization: Bearer) or
	// a verified client certificate — and every Kafka connection
	// authenticate (SASL, or a client certificate) before any request but
	// ApiVersions, SaslHandshake and SaslAuthenticate (auth.enabled).
	Enabled bool `yaml:"enabled"`
	// AllowPlainWithoutTLS accepts SASL PLAIN on a Kafka connection
	// without TLS, which sends the password in clear
	// (auth.allow-plain-without-tls); default false.
	AllowPlainWithoutTLS bool `yaml:"allow-plain-without-tls"`
}
