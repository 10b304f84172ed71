package server

import (
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/clock"
	"github.com/spoolmq/spool/internal/serverhook"
	"github.com/spoolmq/spool/internal/vfs"
)

// What tests and tools inside the module may reach and embedders may not
// goes through internal/serverhook.
func init() {
	serverhook.Install(serverhook.Funcs{
		Broker: func(h serverhook.Server) *broker.Broker {
			s := h.(*Server)
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.broker
		},
		SetFS:    func(h serverhook.Server, fs vfs.FS) { h.(*Server).beforeStart(func(s *Server) { s.fs = fs }) },
		SetClock: func(h serverhook.Server, c clock.Clock) { h.(*Server).beforeStart(func(s *Server) { s.clock = c }) },
	})
}

// beforeStart calls set, which changes how s will run; it panics if s has
// started.
func (s *Server) beforeStart(set func(*Server)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		panic("serverhook: SetFS or SetClock after Start")
	}
	set(s)
}
