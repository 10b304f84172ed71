package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/avro"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/spoolmq/spool/client"
)

// Validation on publish: the throughput of publishing to a topic bound to
// a schema subject against an unbound topic, the same bytes to both, and
// the registry's lookups by id.

// SchemaFormats are the formats RunSchema measures.
var SchemaFormats = []string{"avro", "json"}

// SchemaPaths are the publish paths RunSchema measures.
var SchemaPaths = []string{"native", "kafka"}

// benchAvroSchema is a typical event of about ten fields: strings, longs,
// a timestamp, an enum, a nested record, an array of records and an
// optional field.
const benchAvroSchema = `{
  "type": "record", "name": "OrderPlaced", "namespace": "bench.shop",
  "fields": [
    {"name": "id", "type": "string"},
    {"name": "customer", "type": "long"},
    {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID", "SHIPPED", "DELIVERED", "CANCELLED"]}},
    {"name": "total", "type": "long"},
    {"name": "currency", "type": "string"},
    {"name": "ship", "type": {"type": "record", "name": "Address", "fields": [
      {"name": "street", "type": "string"},
      {"name": "city", "type": "string"},
      {"name": "zip", "type": "string"},
      {"name": "country", "type": "string"}
    ]}},
    {"name": "items", "type": {"type": "array", "items": {"type": "record", "name": "Item", "fields": [
      {"name": "sku", "type": "string"},
      {"name": "qty", "type": "int"},
      {"name": "price", "type": "long"}
    ]}}},
    {"name": "coupon", "type": ["null", "string"], "default": null},
    {"name": "note", "type": "string"}
  ]
}`

// benchJSONSchema is the same event as a JSON Schema.
const benchJSONSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "OrderPlaced",
  "type": "object",
  "properties": {
    "id": {"type": "string", "minLength": 1},
    "customer": {"type": "integer", "minimum": 0},
    "ts": {"type": "integer"},
    "status": {"enum": ["NEW", "PAID", "SHIPPED", "DELIVERED", "CANCELLED"]},
    "total": {"type": "integer", "minimum": 0},
    "currency": {"type": "string", "minLength": 3, "maxLength": 3},
    "ship": {
      "type": "object",
      "properties": {
        "street": {"type": "string"},
        "city": {"type": "string"},
        "zip": {"type": "string"},
        "country": {"type": "string"}
      },
      "required": ["street", "city", "zip", "country"],
      "additionalProperties": false
    },
    "items": {
      "type": "array",
      "items": {
        "type": "object",
        "properties": {
          "sku": {"type": "string"},
          "qty": {"type": "integer", "minimum": 1},
          "price": {"type": "integer", "minimum": 0}
        },
        "required": ["sku", "qty", "price"],
        "additionalProperties": false
      }
    },
    "coupon": {"type": "string"},
    "note": {"type": "string"}
  },
  "required": ["id", "customer", "ts", "status", "total", "currency", "ship", "items", "note"],
  "additionalProperties": false
}`

// benchEvent is one event of the benchmark's schema (JSON field names;
// Avro takes it as a map).
type benchEvent struct {
	OrderID    string      `json:"id"`
	CustomerID int64       `json:"customer"`
	CreatedAt  int64       `json:"ts"`
	Status     string      `json:"status"`
	TotalCents int64       `json:"total"`
	Currency   string      `json:"currency"`
	Shipping   benchAddr   `json:"ship"`
	Items      []benchItem `json:"items"`
	Coupon     *string     `json:"coupon,omitempty"`
	Note       string      `json:"note"`
}

type benchAddr struct {
	Street   string `json:"street"`
	City     string `json:"city"`
	Postcode string `json:"zip"`
	Country  string `json:"country"`
}

type benchItem struct {
	SKU        string `json:"sku"`
	Quantity   int32  `json:"qty"`
	PriceCents int64  `json:"price"`
}

func (e benchEvent) avroValue() map[string]any {
	items := make([]any, len(e.Items))
	for i, it := range e.Items {
		items[i] = map[string]any{"sku": it.SKU, "qty": it.Quantity, "price": it.PriceCents}
	}
	var coupon any
	if e.Coupon != nil {
		coupon = *e.Coupon
	}
	return map[string]any{
		"id": e.OrderID, "customer": e.CustomerID, "ts": e.CreatedAt, "status": e.Status,
		"total": e.TotalCents, "currency": e.Currency,
		"ship": map[string]any{"street": e.Shipping.Street, "city": e.Shipping.City,
			"zip": e.Shipping.Postcode, "country": e.Shipping.Country},
		"items": items, "coupon": coupon, "note": e.Note,
	}
}

// SchemaText returns the benchmark's schema for a format and its registry
// schemaType.
func SchemaText(format string) (text, schemaType string, err error) {
	switch format {
	case "avro":
		return benchAvroSchema, "AVRO", nil
	case "json":
		return benchJSONSchema, "JSON", nil
	}
	return "", "", fmt.Errorf("unknown schema format %q (avro or json)", format)
}

// SchemaValues returns n distinct values of exactly size bytes in the
// registry's wire format for schema id: events of the benchmark's schema
// with random ids, amounts and items, encoded in format, their note
// padded to the size.
func SchemaValues(format string, id, size, n int) ([][]byte, error) {
	var encode func(benchEvent) ([]byte, error)
	switch format {
	case "avro":
		s, err := avro.Parse(benchAvroSchema)
		if err != nil {
			return nil, err
		}
		encode = func(e benchEvent) ([]byte, error) { return s.Encode(e.avroValue()) }
	case "json":
		encode = func(e benchEvent) ([]byte, error) { return json.Marshal(e) }
	default:
		return nil, fmt.Errorf("unknown schema format %q (avro or json)", format)
	}
	rng := rand.New(rand.NewPCG(uint64(id), uint64(size)))
	statuses := []string{"NEW", "PAID", "SHIPPED", "DELIVERED", "CANCELLED"}
	cities := []string{"London", "Lyon", "Porto", "Berlin", "Oslo"}
	out := make([][]byte, n)
	for i := range out {
		e := benchEvent{
			OrderID:    fmt.Sprintf("%08x", rng.Uint32()),
			CustomerID: rng.Int64N(1 << 32),
			CreatedAt:  1767225600000 + rng.Int64N(1<<32),
			Status:     statuses[rng.IntN(len(statuses))],
			TotalCents: rng.Int64N(1 << 20),
			Currency:   "EUR",
			Shipping:   benchAddr{Street: fmt.Sprintf("%d Main St", 1+rng.IntN(200)), City: cities[rng.IntN(len(cities))], Postcode: fmt.Sprintf("%05d", rng.IntN(100000)), Country: "FR"},
		}
		for k := 0; k < 1+rng.IntN(2); k++ {
			e.Items = append(e.Items, benchItem{SKU: fmt.Sprintf("A%06d", rng.IntN(1000000)), Quantity: int32(1 + rng.IntN(5)), PriceCents: rng.Int64N(100000)})
		}
		if rng.IntN(2) == 0 {
			c := "SPRING10"
			e.Coupon = &c
		}
		// Pad the note until the value has the size (the note's length
		// prefix may grow by a byte on the way: step one at a time near it).
		var payload []byte
		for try := 0; ; try++ {
			if try > 0 && try%16 == 0 {
				// Stuck where the note's length prefix grows by a
				// byte: move the boundary.
				e.Shipping.Street += "."
				e.Note = ""
			}
			if try > 256 {
				return nil, fmt.Errorf("cannot make a %s event of %d bytes", format, size)
			}
			var err error
			if payload, err = encode(e); err != nil {
				return nil, err
			}
			short := size - 5 - len(payload)
			if short == 0 {
				break
			}
			if short < 0 {
				// Too long (JSON spells out every name): a shorter
				// event, the optional coupon left out, then one item.
				switch {
				case e.Note != "":
					e.Note = e.Note[:len(e.Note)-1]
				case e.Coupon != nil:
					e.Coupon = nil
				case len(e.Items) > 1:
					e.Items = e.Items[:1]
				default:
					return nil, fmt.Errorf("a %s event needs more than %d bytes", format, size)
				}
				continue
			}
			e.Note += noteText(rng, max(1, short-2))
		}
		v := make([]byte, 5, size)
		binary.BigEndian.PutUint32(v[1:], uint32(id))
		out[i] = append(v, payload...)
	}
	return out, nil
}

// noteText returns n bytes of word-like text: lowercase letters and
// spaces, about as compressible as free text typed by a user.
func noteText(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		if rng.IntN(6) == 0 {
			b[i] = ' '
		} else {
			b[i] = byte('a' + rng.IntN(26))
		}
	}
	return string(b)
}

// RegisterSchema registers the benchmark's schema of format under subject
// in the registry at registryURL and returns its id.
func RegisterSchema(ctx context.Context, registryURL, subject, format string) (int, error) {
	text, typ, err := SchemaText(format)
	if err != nil {
		return 0, err
	}
	body, _ := json.Marshal(map[string]string{"schema": text, "schemaType": typ})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, registryURL+"/subjects/"+subject+"/versions", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("register %s: %s: %s", subject, resp.Status, b)
	}
	var r struct {
		ID int `json:"id"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return 0, fmt.Errorf("register %s: %v", subject, err)
	}
	return r.ID, nil
}

// SchemaConfig configures RunSchema.
type SchemaConfig struct {
	Start    ServerStarter // starts the server under measurement
	Dir      string        // its data goes in a new directory under Dir
	Formats  []string      // of SchemaFormats
	Paths    []string      // of SchemaPaths
	Size     int           // value size in bytes, wire-format header included
	Messages int           // messages per publish measurement
	Rounds   int
	// Lookups are the concurrencies of the registry lookup measurement,
	// LookupDuration the time of each (0 skips it).
	Lookups        []int
	LookupDuration time.Duration
	Progress       io.Writer
}

// SchemaResult is one publish measurement.
type SchemaResult struct {
	Round     int     `json:"round"`
	Path      string  `json:"path"`
	Format    string  `json:"format"`
	Validated bool    `json:"validated"`
	Rate      float64 `json:"rate"` // messages/s
}

// LookupResult is one registry lookup measurement.
type LookupResult struct {
	Round       int `json:"round"`
	Concurrency int `json:"concurrency"`
	// Pipelined, when not 0, is the window of a measurement on one
	// connection with HTTP/1.1 pipelining: that many requests in flight
	// (Concurrency is then 1).
	Pipelined int     `json:"pipelined,omitempty"`
	Rate      float64 `json:"rate"` // lookups/s
	// PeerRate is the same client against a bare net/http server in the
	// benchmark's process answering the same bytes: the machine's
	// request/response ceiling for this client at that moment.
	PeerRate float64 `json:"peer_rate"`
}

// SchemaReport is what RunSchema measured.
type SchemaReport struct {
	Publish []SchemaResult
	Lookups []LookupResult
}

// RunSchema starts one server and, in each round, for each path and
// format, publishes cfg.Messages values to a new unbound topic and to a
// new topic bound to the format's subject (the same bytes to both; the
// order alternates between rounds), then measures registry lookups by id
// from one HTTP client.
func RunSchema(ctx context.Context, cfg SchemaConfig) (*SchemaReport, error) {
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	dir, err := os.MkdirTemp(cfg.Dir, "schema-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	srv, stop, err := cfg.Start(ctx, filepath.Join(dir, "data"))
	if err != nil {
		return nil, err
	}
	defer stop()
	if srv.RegistryURL == "" {
		return nil, fmt.Errorf("the server has no schema registry address")
	}
	ids := map[string]int{}
	values := map[string][][]byte{}
	for _, f := range cfg.Formats {
		id, err := RegisterSchema(ctx, srv.RegistryURL, "bench-"+f+"-value", f)
		if err != nil {
			return nil, err
		}
		ids[f] = id
		if values[f], err = SchemaValues(f, id, cfg.Size, 4096); err != nil {
			return nil, err
		}
	}
	c, err := client.New(srv.URL, client.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	rep := &SchemaReport{}
	seq := 0
	var peer net.Listener
	// A discarded warm-up of each path: the first measurement after the
	// server starts would otherwise pay for its warming up.
	for _, path := range cfg.Paths {
		if len(cfg.Formats) == 0 {
			break
		}
		seq++
		topic := fmt.Sprintf("schema-warmup-%s-%d", path, seq)
		f := cfg.Formats[0]
		fmt.Fprintf(progress, "warm-up: %s\n", path)
		if path == "kafka" {
			_, err = schemaPublishKafka(ctx, srv.KafkaAddr, topic, "bench-"+f+"-value", values[f], min(cfg.Messages, 100_000))
		} else {
			_, err = schemaPublishNative(ctx, c, topic, "bench-"+f+"-value", values[f], min(cfg.Messages, 100_000))
		}
		if err != nil {
			return rep, fmt.Errorf("warm-up, %s: %w", path, err)
		}
	}
	for r := 1; r <= cfg.Rounds; r++ {
		for _, path := range cfg.Paths {
			for _, f := range cfg.Formats {
				order := []bool{false, true}
				if r%2 == 0 {
					order = []bool{true, false}
				}
				for _, validated := range order {
					subject := ""
					if validated {
						subject = "bench-" + f + "-value"
					}
					seq++
					topic := fmt.Sprintf("schema-%s-%s-%d", path, f, seq)
					var rate float64
					switch path {
					case "native":
						rate, err = schemaPublishNative(ctx, c, topic, subject, values[f], cfg.Messages)
					case "kafka":
						rate, err = schemaPublishKafka(ctx, srv.KafkaAddr, topic, subject, values[f], cfg.Messages)
					default:
						err = fmt.Errorf("unknown path %q (native or kafka)", path)
					}
					if err != nil {
						return rep, fmt.Errorf("%s, %s, validated %v: %w", path, f, validated, err)
					}
					fmt.Fprintf(progress, "round %d/%d: %s %s %s: %.0f msg/s\n", r, cfg.Rounds, path, f, validatedName(validated), rate)
					rep.Publish = append(rep.Publish, SchemaResult{Round: r, Path: path, Format: f, Validated: validated, Rate: rate})
				}
			}
		}
		if cfg.LookupDuration > 0 && len(cfg.Formats) > 0 {
			id := ids[cfg.Formats[0]]
			if peer == nil {
				if peer, err = startLookupPeer(ctx, srv.RegistryURL, id); err != nil {
					return rep, err
				}
				defer peer.Close()
			}
			for _, n := range cfg.Lookups {
				rate, err := RegistryLookups(ctx, srv.RegistryURL, id, n, cfg.LookupDuration)
				if err != nil {
					return rep, fmt.Errorf("registry lookups: %w", err)
				}
				peerRate, err := RegistryLookups(ctx, "http://"+peer.Addr().String(), id, n, cfg.LookupDuration)
				if err != nil {
					return rep, fmt.Errorf("lookups from the bare net/http server: %w", err)
				}
				fmt.Fprintf(progress, "round %d/%d: registry lookups by id, %d goroutines: %.0f/s (bare net/http %.0f/s)\n", r, cfg.Rounds, n, rate, peerRate)
				rep.Lookups = append(rep.Lookups, LookupResult{Round: r, Concurrency: n, Rate: rate, PeerRate: peerRate})
			}
			for _, conns := range []int{1, 4} {
				rate, err := PipelinedLookups(ctx, srv.RegistryURL, id, conns, pipelineWindow, cfg.LookupDuration)
				if err != nil {
					return rep, fmt.Errorf("pipelined registry lookups: %w", err)
				}
				peerRate, err := PipelinedLookups(ctx, "http://"+peer.Addr().String(), id, conns, pipelineWindow, cfg.LookupDuration)
				if err != nil {
					return rep, fmt.Errorf("pipelined lookups from the bare net/http server: %w", err)
				}
				fmt.Fprintf(progress, "round %d/%d: registry lookups by id, %d connections pipelining %d each: %.0f/s (bare net/http %.0f/s)\n",
					r, cfg.Rounds, conns, pipelineWindow, rate, peerRate)
				rep.Lookups = append(rep.Lookups, LookupResult{Round: r, Concurrency: conns, Pipelined: pipelineWindow, Rate: rate, PeerRate: peerRate})
			}
		}
	}
	return rep, nil
}

func validatedName(v bool) string {
	if v {
		return "validated"
	}
	return "unvalidated"
}

// schemaPublishNative publishes n of values (in turn) through one SDK
// Producer (default options) to a new one-partition topic bound to
// subject (none when empty) and returns messages/s. The topic is deleted
// afterwards.
func schemaPublishNative(ctx context.Context, c *client.Client, topic, subject string, values [][]byte, n int) (float64, error) {
	if _, err := c.CreateTopic(ctx, topic, client.TopicConfig{Partitions: 1, SchemaSubject: subject}); err != nil {
		return 0, err
	}
	defer c.DeleteTopic(ctx, topic)
	p, err := c.NewProducer(topic)
	if err != nil {
		return 0, err
	}
	defer p.Close(ctx)
	// The stream is open before the clock starts.
	if _, err := p.PublishSync(ctx, client.Message{Value: values[0]}); err != nil {
		return 0, err
	}
	var failed atomic.Int64
	var firstErr firstError
	futures := make([]*client.Future, 0, 4096)
	t0 := time.Now()
	for i := range n {
		futures = append(futures, p.Send(ctx, client.Message{Value: values[i%len(values)]}))
		if len(futures) == cap(futures) || i == n-1 {
			for _, f := range futures {
				if _, err := f.Wait(ctx); err != nil {
					failed.Add(1)
					firstErr.set(err)
				}
			}
			futures = futures[:0]
		}
	}
	if err := p.Flush(ctx); err != nil {
		return 0, err
	}
	rate := float64(n) / time.Since(t0).Seconds()
	if f := failed.Load(); f > 0 {
		return 0, fmt.Errorf("%d publishes failed, the first: %v", f, firstErr.get())
	}
	return rate, nil
}

// schemaPublishKafka produces n of values (in turn) with one idempotent
// franz-go producer (acks=all, default linger and compression, 4,096
// buffered records) to a new one-partition topic created with the Kafka
// config spool.schema.subject = subject (none when empty), and returns
// records/s. The topic is deleted afterwards.
func schemaPublishKafka(ctx context.Context, addr, topic, subject string, values [][]byte, n int) (float64, error) {
	admin, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return 0, err
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)
	var configs map[string]*string
	if subject != "" {
		configs = map[string]*string{"spool.schema.subject": &subject}
	}
	if _, err := adm.CreateTopic(ctx, 1, -1, configs, topic); err != nil {
		return 0, err
	}
	defer adm.DeleteTopics(ctx, topic)
	p, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.MaxBufferedRecords(4096))
	if err != nil {
		return 0, err
	}
	defer p.Close()
	if err := p.ProduceSync(ctx, &kgo.Record{Value: values[0]}).FirstErr(); err != nil {
		return 0, err
	}
	var failed atomic.Int64
	var firstErr firstError
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range n {
		wg.Add(1)
		p.Produce(ctx, &kgo.Record{Value: values[i%len(values)]}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
				firstErr.set(err)
			}
			wg.Done()
		})
	}
	wg.Wait()
	rate := float64(n) / time.Since(t0).Seconds()
	if f := failed.Load(); f > 0 {
		return 0, fmt.Errorf("%d records failed, the first: %v", f, firstErr.get())
	}
	return rate, nil
}

// RegistryLookups measures GET /schemas/ids/{id} against the registry at
// registryURL for d from one HTTP client (keep-alive, one connection per
// goroutine) with concurrency goroutines, each sending its next request
// when the previous answer is read, and returns lookups/s.
func RegistryLookups(ctx context.Context, registryURL string, id, concurrency int, d time.Duration) (float64, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: concurrency, DisableCompression: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	url := fmt.Sprintf("%s/schemas/ids/%d", registryURL, id)
	get := func(buf *bytes.Buffer) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		buf.Reset()
		_, err = buf.ReadFrom(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s: %s", url, resp.Status, buf.Bytes())
		}
		return nil
	}
	// Connections open before the clock starts.
	var warm sync.WaitGroup
	for range concurrency {
		warm.Go(func() { _ = get(new(bytes.Buffer)) })
	}
	warm.Wait()
	var total atomic.Int64
	var firstErr firstError
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	t0 := time.Now()
	for range concurrency {
		wg.Go(func() {
			var buf bytes.Buffer
			n := int64(0)
			for time.Now().Before(deadline) {
				if err := get(&buf); err != nil {
					firstErr.set(err)
					break
				}
				n++
			}
			total.Add(n)
		})
	}
	wg.Wait()
	if err := firstErr.get(); err != nil {
		return 0, err
	}
	return float64(total.Load()) / time.Since(t0).Seconds(), nil
}

// pipelineWindow is how many lookups PipelinedLookups keeps in flight.
const pipelineWindow = 256

// PipelinedLookups measures GET /schemas/ids/{id} for d over conns
// connections with HTTP/1.1 pipelining and returns lookups/s, their sum.
func PipelinedLookups(ctx context.Context, registryURL string, id, conns, window int, d time.Duration) (float64, error) {
	rates := make([]float64, conns)
	errs := make([]error, conns)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() { rates[i], errs[i] = pipelinedLookups(ctx, registryURL, id, window, d) })
	}
	wg.Wait()
	total := 0.0
	for i := range conns {
		if errs[i] != nil {
			return 0, errs[i]
		}
		total += rates[i]
	}
	return total, nil
}

// pipelinedLookups measures lookups over one connection with HTTP/1.1
// pipelining: a writer keeps window requests in flight, a reader parses
// the answers in order (each must be 200). It returns answers read over
// the time until the last one.
func pipelinedLookups(ctx context.Context, registryURL string, id, window int, d time.Duration) (float64, error) {
	u, err := url.Parse(registryURL)
	if err != nil {
		return 0, err
	}
	var dialer net.Dialer
	nc, err := dialer.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	req := []byte(fmt.Sprintf("GET /schemas/ids/%d HTTP/1.1\r\nHost: %s\r\n\r\n", id, u.Host))
	slots := make(chan struct{}, window)
	readErr := make(chan error, 1)
	var answered atomic.Int64
	go func() {
		br := bufio.NewReaderSize(nc, 64<<10)
		for {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				readErr <- err
				return
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil {
				readErr <- err
				return
			}
			if resp.StatusCode != http.StatusOK {
				readErr <- fmt.Errorf("GET /schemas/ids/%d: %s", id, resp.Status)
				return
			}
			answered.Add(1)
			<-slots
		}
	}()
	bw := bufio.NewWriterSize(nc, 64<<10)
	t0 := time.Now()
	deadline := t0.Add(d)
	sent := int64(0)
	for time.Now().Before(deadline) {
		select {
		case slots <- struct{}{}:
		case err := <-readErr:
			return 0, err
		}
		bw.Write(req)
		sent++
		if len(slots) == window || len(slots) == 1 {
			if err := bw.Flush(); err != nil {
				return 0, err
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	for answered.Load() < sent {
		select {
		case err := <-readErr:
			return 0, err
		case <-time.After(time.Millisecond):
		}
	}
	return float64(answered.Load()) / time.Since(t0).Seconds(), nil
}

// startLookupPeer starts a bare net/http server on a loopback port that
// answers every request with the registry's answer to GET
// /schemas/ids/{id}: the same bytes and content type, nothing looked up.
// Closing the listener stops it.
func startLookupPeer(ctx context.Context, registryURL string, id int) (net.Listener, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/schemas/ids/%d", registryURL, id), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	ctype := resp.Header.Get("Content-Type")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", ctype)
		w.Write(body)
	}))
	return ln, nil
}

// firstError keeps the first of concurrent errors.
type firstError struct {
	mu  sync.Mutex
	err error
}

func (f *firstError) set(err error) {
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.mu.Unlock()
}

func (f *firstError) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}
