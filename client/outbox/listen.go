package outbox

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
)

// errNoPgx: the database is not opened with pgx's database/sql driver.
var errNoPgx = errors.New("not a pgx connection (open the database with github.com/jackc/pgx/v5/stdlib's \"pgx\" driver to be woken by NOTIFY)")

// listen wakes the relay at every NOTIFY of the table's channel (the
// trigger Migrate creates sends one per inserting statement) until ctx
// ends, on a connection of its own from the pool, reconnecting after
// failures; without pgx the relay only polls.
func (r *Relay) listen(ctx context.Context) {
	if r.db.Stats().MaxOpenConnections == 1 {
		r.log.Info("outbox: polling only", "reason", "the pool has one connection, which the steps need", "interval", r.cfg.PollInterval)
		return
	}
	failures := 0
	for ctx.Err() == nil {
		err := r.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errNoPgx) {
			r.log.Info("outbox: polling only", "reason", err, "interval", r.cfg.PollInterval)
			return
		}
		failures++
		r.log.Warn("outbox: LISTEN failed; polling until it is back", "error", err)
		r.signal() // notifications may have been missed
		t := time.NewTimer(errorBackoff(failures, r.cfg.ErrorBackoffMax))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (r *Relay) listenOnce(ctx context.Context) error {
	conn, err := r.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("outbox: connection to LISTEN on: %w", err)
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return errNoPgx
		}
		pc := sc.Conn()
		if _, err := pc.Exec(ctx, "LISTEN "+r.cfg.Table); err != nil {
			return fmt.Errorf("%w: outbox: LISTEN %s: %w", driver.ErrBadConn, r.cfg.Table, err)
		}
		r.signal() // rows inserted before the LISTEN
		for {
			if _, err := pc.WaitForNotification(ctx); err != nil {
				// ErrBadConn: database/sql closes the connection
				// rather than pool it still listening.
				return fmt.Errorf("%w: outbox: waiting for notifications: %w", driver.ErrBadConn, err)
			}
			r.signal()
		}
	})
}
