package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/spoolmq/spool/internal/bench"
)

func newBenchSchemaCmd() *cobra.Command {
	var (
		dir       string
		formats   string
		paths     string
		size      int
		messages  int
		rounds    int
		lookups   string
		lookupDur time.Duration
		debugAddr string
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "schema",
		Short: "Publish throughput to a schema-validated topic against an unvalidated one, and registry lookups by id",
		Long: "Starts `spool serve` from this executable as a separate process (data in a new directory\n" +
			"under --dir, durability always, free loopback ports; stopped at the end), registers a\n" +
			"ten-field event schema in Avro and JSON Schema, and in each of --rounds rounds, for each\n" +
			"path (the Go SDK's Producer, franz-go) and format, publishes --messages values of --size\n" +
			"bytes in the registry's wire format to a new topic bound to the format's subject and to a\n" +
			"new unbound one: the same bytes to both, the order alternating between rounds. Then it\n" +
			"measures GET /schemas/ids/{id} from one HTTP client with each number of goroutines in\n" +
			"--lookups. Prints Markdown tables of medians, the spread, and the ratios validated ÷\n" +
			"unvalidated taken within each round; per-round numbers go to stderr.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fs := splitList(formats)
			for _, f := range fs {
				if !slices.Contains(bench.SchemaFormats, f) {
					return usageErrorf(cmd, "--formats: unknown format %q (avro, json)", f)
				}
			}
			ps := splitList(paths)
			for _, p := range ps {
				if !slices.Contains(bench.SchemaPaths, p) {
					return usageErrorf(cmd, "--paths: unknown path %q (native, kafka)", p)
				}
			}
			ls, err := parseInts(lookups)
			if err != nil {
				return usageErrorf(cmd, "--lookups: %v", err)
			}
			if rounds < 1 || messages < 1 {
				return usageErrorf(cmd, "--rounds and --messages must be at least 1")
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("finding this executable to start the server: %w", err)
			}
			var extra []string
			if debugAddr != "" {
				extra = append(extra, "--debug-addr", debugAddr)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rep, err := bench.RunSchema(ctx, bench.SchemaConfig{Start: bench.ProcessServer(exe, extra...), Dir: dir,
				Formats: fs, Paths: ps, Size: size, Messages: messages, Rounds: rounds,
				Lookups: ls, LookupDuration: lookupDur, Progress: cmd.ErrOrStderr()})
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			printSchemaReport(cmd.OutOrStdout(), rep, rounds, messages, size, lookupDur)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", ".", "directory for the started server's data (the disk under test)")
	f.StringVar(&formats, "formats", "avro,json", "schema formats, comma-separated (avro, json)")
	f.StringVar(&paths, "paths", "native,kafka", "publish paths, comma-separated (native: the Go SDK; kafka: franz-go)")
	f.IntVar(&size, "size", 256, "value size in bytes, the wire format's 5-byte header included")
	f.IntVar(&messages, "messages", 500_000, "messages per publish measurement")
	f.IntVar(&rounds, "rounds", 5, "rounds; the tables show medians")
	f.StringVar(&lookups, "lookups", "1,4,16", "goroutines of the registry lookup measurement, comma-separated")
	f.DurationVar(&lookupDur, "lookup-duration", 3*time.Second, "time per registry lookup measurement (0 skips them)")
	f.StringVar(&debugAddr, "debug-addr", "", "start the server with --debug-addr ADDR, to profile it during the run")
	f.BoolVar(&asJSON, "json", false, "print the per-round results as JSON instead of the tables")
	return cmd
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// spread formats the median of xs with their range.
func spread(xs []float64, format string) string {
	if len(xs) == 0 {
		return "—"
	}
	return fmt.Sprintf(format+" ("+format+"–"+format+")", median(xs), slices.Min(xs), slices.Max(xs))
}

func printSchemaReport(out io.Writer, rep *bench.SchemaReport, rounds, messages, size int, lookupDur time.Duration) {
	type key struct {
		path, format string
		validated    bool
		round        int
	}
	rates := map[key]float64{}
	var paths, formats []string
	for _, r := range rep.Publish {
		rates[key{r.Path, r.Format, r.Validated, r.Round}] = r.Rate
		if !slices.Contains(paths, r.Path) {
			paths = append(paths, r.Path)
		}
		if !slices.Contains(formats, r.Format) {
			formats = append(formats, r.Format)
		}
	}
	fmt.Fprintf(out, "%d rounds; %d messages of %d B per measurement; median (min–max); ratios taken within each round.\n\n", rounds, messages, size)
	fmt.Fprintf(out, "| path | format | unvalidated msg/s | validated msg/s | validated ÷ unvalidated |\n|---|---|---:|---:|---:|\n")
	avroRatio := map[string]float64{}
	for _, p := range paths {
		for _, f := range formats {
			var un, va, ratios []float64
			for r := 1; r <= rounds; r++ {
				u, okU := rates[key{p, f, false, r}]
				v, okV := rates[key{p, f, true, r}]
				if okU {
					un = append(un, u)
				}
				if okV {
					va = append(va, v)
				}
				if okU && okV && u > 0 {
					ratios = append(ratios, v/u)
				}
			}
			fmt.Fprintf(out, "| %s | %s | %s | %s | %s |\n", p, f, spread(un, "%.0f"), spread(va, "%.0f"), spread(ratios, "%.2f"))
			if f == "avro" {
				avroRatio[p] = median(ratios)
			}
		}
	}
	lk, peer, lkRatio := map[int][]float64{}, map[int][]float64{}, map[int][]float64{}
	var conc []int
	pipe, pipePeer, pipeRatio := map[int][]float64{}, map[int][]float64{}, map[int][]float64{}
	var pipeConns []int
	for _, l := range rep.Lookups {
		if l.Pipelined > 0 {
			c := l.Concurrency
			if _, ok := pipe[c]; !ok {
				pipeConns = append(pipeConns, c)
			}
			pipe[c], pipePeer[c] = append(pipe[c], l.Rate), append(pipePeer[c], l.PeerRate)
			pipeRatio[c] = append(pipeRatio[c], ratio(l.Rate, l.PeerRate))
			continue
		}
		if _, ok := lk[l.Concurrency]; !ok {
			conc = append(conc, l.Concurrency)
		}
		lk[l.Concurrency] = append(lk[l.Concurrency], l.Rate)
		peer[l.Concurrency] = append(peer[l.Concurrency], l.PeerRate)
		lkRatio[l.Concurrency] = append(lkRatio[l.Concurrency], ratio(l.Rate, l.PeerRate))
	}
	if len(conc) > 0 {
		fmt.Fprintf(out, "\nRegistry lookups by id (GET /schemas/ids/{id}, one HTTP client, keep-alive), %s per measurement,\n", lookupDur)
		fmt.Fprintf(out, "beside the same client against a bare net/http server answering the same bytes:\n\n")
		fmt.Fprintf(out, "| goroutines | registry lookups/s | bare net/http requests/s | registry ÷ bare |\n|---:|---:|---:|---:|\n")
		for _, c := range conc {
			fmt.Fprintf(out, "| %d | %s | %s | %s |\n", c, spread(lk[c], "%.0f"), spread(peer[c], "%.0f"), spread(lkRatio[c], "%.2f"))
		}
		for _, c := range pipeConns {
			fmt.Fprintf(out, "| %d connections, HTTP/1.1 pipelining %d requests each | %s | %s | %s |\n", c, pipelineWindowOf(rep), spread(pipe[c], "%.0f"), spread(pipePeer[c], "%.0f"), spread(pipeRatio[c], "%.2f"))
		}
	}
	fmt.Fprintf(out, "\n| target | result |\n|---|---|\n")
	for _, p := range paths {
		if r, ok := avroRatio[p]; ok {
			fmt.Fprintf(out, "| validated Avro publish ≥ 50 %% of unvalidated (%s) | %s: %.2f |\n", p, metName(r >= 0.5), r)
		}
	}
	if xs, ok := lk[1]; ok {
		best := median(xs)
		for _, c := range conc {
			best = max(best, median(lk[c]))
		}
		for _, c := range pipeConns {
			best = max(best, median(pipe[c]))
		}
		fmt.Fprintf(out, "| registry lookups by id ≥ 50,000/s from one client | %s: %.0f/s with one goroutine, %.0f/s at best |\n", metName(best >= 50000), median(xs), best)
	}
}

// pipelineWindowOf is the window of the report's pipelined lookups.
func pipelineWindowOf(rep *bench.SchemaReport) int {
	for _, l := range rep.Lookups {
		if l.Pipelined > 0 {
			return l.Pipelined
		}
	}
	return 0
}

func metName(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**missed**"
}
