// Package serverhook gives code inside this module what package server
// keeps from embedders: the broker a running server holds, and the file
// system and clock a server runs with (fault injection and fake time in
// tests). Package server installs the functions when it is initialised,
// so they work in every program that has a server to pass them.
package serverhook

import (
	"github.com/spoolmq/spool/internal/broker"
	"github.com/spoolmq/spool/internal/clock"
	"github.com/spoolmq/spool/internal/vfs"
)

// Server is a *server.Server, named by two of its methods because this
// package cannot import package server (which imports this one).
type Server interface {
	DataDir() string
	HTTPAddr() string
}

// Funcs are package server's implementations of this package's functions.
type Funcs struct {
	Broker   func(Server) *broker.Broker
	SetFS    func(Server, vfs.FS)
	SetClock func(Server, clock.Clock)
}

var funcs Funcs

// Install is called by package server's init.
func Install(f Funcs) { funcs = f }

// Broker returns the broker of s once it has started, nil before.
func Broker(s Server) *broker.Broker { return funcs.Broker(s) }

// SetFS makes s keep its data directory in fs (the default is vfs.Default).
// It panics if s has started.
func SetFS(s Server, fs vfs.FS) { funcs.SetFS(s, fs) }

// SetClock makes s tell time with c (the default is clock.Real). It panics
// if s has started.
func SetClock(s Server, c clock.Clock) { funcs.SetClock(s, c) }
