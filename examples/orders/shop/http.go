package shop

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// Handler is the orders service's HTTP API:
//
//	POST /orders        {"item","amount_cents","currency","address"} → the order (JSON)
//	GET  /orders        every order, one a line
//	GET  /orders/{id}   one order (JSON)
//	POST /replay        build a new read model from the orders topic
//	GET  /report        the read model
func (o *Orders) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
		var n NewOrder
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&n); err != nil {
			http.Error(w, "bad order: "+err.Error(), http.StatusBadRequest)
			return
		}
		ord, err := o.Place(r.Context(), n)
		if err != nil {
			httpError(w, err)
			return
		}
		w.WriteHeader(http.StatusCreated)
		writeJSON(w, ord)
	})
	mux.HandleFunc("GET /orders", func(w http.ResponseWriter, r *http.Request) {
		list, err := o.List(r.Context())
		if err != nil {
			httpError(w, err)
			return
		}
		for _, x := range list {
			rem := ""
			if x.Reminded {
				rem = "  (reminded)"
			}
			reason := ""
			if x.Reason != "" {
				reason = "  reason: " + x.Reason
			}
			fmt.Fprintf(w, "%-6s %-15s %-10s %12s  to %-10s trace=%s%s%s\n", x.ID, x.State, x.Item, money(x.Amount, x.Currency),
				x.Address, x.Trace, rem, reason)
		}
	})
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		ord, err := o.Get(r.Context(), r.PathValue("id"))
		if err != nil {
			httpError(w, err)
			return
		}
		writeJSON(w, ord)
	})
	mux.HandleFunc("POST /replay", func(w http.ResponseWriter, r *http.Request) {
		rep, err := o.Replay(r.Context())
		if err != nil {
			httpError(w, err)
			return
		}
		fmt.Fprintf(w, "replaying topic %s from its first event into read model %s (GET /report)\n", TopicOrders, rep.Subscription)
	})
	mux.HandleFunc("GET /report", func(w http.ResponseWriter, _ *http.Request) {
		o.rmu.Lock()
		rep := o.report
		o.rmu.Unlock()
		if rep == nil {
			http.Error(w, "no read model yet: POST /replay first", http.StatusNotFound)
			return
		}
		io.WriteString(w, rep.String())
	})
	return mux
}

// Handler is the payments service's HTTP API:
//
//	POST /outage?on=true|false   start or end an outage of the payment provider
//	POST /currencies?add=XTS     accept payments in another currency
//	GET  /payments               every payment, one a line
//	GET  /breaker                the breaker's state and the provider's calls
func (p *Payments) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /outage", func(w http.ResponseWriter, r *http.Request) {
		on, err := strconv.ParseBool(r.URL.Query().Get("on"))
		if err != nil {
			http.Error(w, "want ?on=true or ?on=false", http.StatusBadRequest)
			return
		}
		p.Provider.SetDown(on)
		p.log.Warn("payment provider outage", "on", on)
		fmt.Fprintf(w, "payment provider outage: %v\n", on)
	})
	mux.HandleFunc("POST /currencies", func(w http.ResponseWriter, r *http.Request) {
		cur := r.URL.Query().Get("add")
		if len(cur) != 3 {
			http.Error(w, "want ?add=XYZ", http.StatusBadRequest)
			return
		}
		p.AllowCurrency(cur)
		p.log.Info("currency accepted from now on", "currency", cur)
		fmt.Fprintf(w, "payments in %s accepted\n", cur)
	})
	mux.HandleFunc("GET /payments", func(w http.ResponseWriter, r *http.Request) {
		ps, err := p.List(r.Context())
		if err != nil {
			httpError(w, err)
			return
		}
		for _, x := range ps {
			fmt.Fprintf(w, "%-6s %-9s %12s  trace=%s\n", x.Order, x.State, money(x.Amount, x.Currency), x.Trace)
		}
	})
	mux.HandleFunc("GET /breaker", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "breaker payment-provider: %s (provider calls: %d)\n", p.Breaker.State(), p.Provider.Calls())
	})
	return mux
}

// Handler is the shipping service's HTTP API:
//
//	GET /shipments   every shipment, one a line
func (sh *Shipping) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /shipments", func(w http.ResponseWriter, r *http.Request) {
		ss, err := sh.List(r.Context())
		if err != nil {
			httpError(w, err)
			return
		}
		for _, x := range ss {
			fmt.Fprintf(w, "%-6s %-8s %-32s trace=%s\n", x.Order, x.State, x.Detail, x.Trace)
		}
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	b, _ := json.Marshal(v)
	w.Write(append(b, '\n'))
}

func httpError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrInvalidOrder):
		code = http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	}
	http.Error(w, err.Error(), code)
}

// runner is what Main runs: a service and its HTTP API.
type runner interface {
	Run(ctx context.Context) error
	Handler() http.Handler
}

// defaultPorts are the services' HTTP ports in the demo.
var defaultPorts = map[string]string{"orders": "7481", "payments": "7482", "shipping": "7483"}

// Main runs service ("orders", "payments" or "shipping") as a program
// until SIGINT or SIGTERM, and returns its exit code.
func Main(service string) int {
	fs := flag.NewFlagSet(service, flag.ContinueOnError)
	spool := fs.String("spool", envOr("SPOOL_SERVER", "http://127.0.0.1:7470"), "the Spool server's URL ($SPOOL_SERVER)")
	addr := fs.String("http", "127.0.0.1:"+defaultPorts[service], "the HTTP API's listen address")
	dbPath := fs.String("db", service+".db", "the SQLite database file")
	reminder := fs.Duration("reminder", DefaultTiming.ReminderAfter, "the delay of an order's reminder")
	openFor := fs.Duration("breaker-open", DefaultTiming.BreakerOpenFor, "how long the payment provider's breaker stays open")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.String("time", a.Value.Time().Format("15:04:05.000"))
		}
		return a
	}}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tp, err := TracerFromEnv(ctx, service)
	if err != nil {
		log.Error("tracing", "err", err)
		return 1
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		tp.Shutdown(sctx)
	}()
	cfg := Config{Spool: *spool, DB: *dbPath, Logger: log, Tracer: tp,
		Timing: Timing{ReminderAfter: *reminder, BreakerOpenFor: *openFor}}
	var svc runner
	switch service {
	case "orders":
		svc, err = NewOrders(ctx, cfg)
	case "payments":
		svc, err = NewPayments(ctx, cfg)
	case "shipping":
		svc, err = NewShipping(ctx, cfg)
	default:
		err = fmt.Errorf("unknown service %q", service)
	}
	if err != nil {
		log.Error("start", "err", err)
		return 1
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Error("listen", "err", err)
		return 1
	}
	hs := &http.Server{Handler: svc.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(ln)
	stopped := make(chan struct{})
	go func() {
		// The HTTP API stops first, so that no request finds the
		// database closed.
		defer close(stopped)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
	}()
	log.Info("started", "service", service, "http", "http://"+ln.Addr().String(), "spool", *spool, "db", *dbPath)
	err = svc.Run(ctx)
	stop()
	<-stopped
	if err != nil {
		log.Error("stopped", "err", err)
		return 1
	}
	return 0
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
