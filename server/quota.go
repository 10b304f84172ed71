package server

import (
	"fmt"

	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/quota"
)

// startQuotas loads the client quotas (internal/quota) from the broker's
// "quota" space; their store applies that space's changes, so it is made
// before the metadata group applies any, like the user store.
func (s *Server) startQuotas(b *broker.Broker) error {
	qs, err := quota.New(quota.Config{Space: b.Space("quota"), Clock: s.clock})
	if err != nil {
		return fmt.Errorf("server: quotas: %w", err)
	}
	s.quotas = qs
	return nil
}

// mountQuotas serves quota management under /spool/auth/quotas
// (docs/api.md, "Quotas") and enforces the quotas on the native API.
func (s *Server) mountQuotas() {
	h := s.authorizeHTTP(s.quotas.Handler(), managementChecks, nil)
	s.api.Handle("/spool/auth/quotas", h)
	s.api.Handle("/spool/auth/quotas/", h)
	s.api.SetQuotas(s.quotas.Limiter())
	s.tel.BindQuotas(s.quotas.Limiter())
}
