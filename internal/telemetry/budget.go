package telemetry

import (
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spoolmq/spool/internal/membudget"
)

var (
	budgetLimit = prometheus.NewDesc("spool_memory_budget_bytes",
		"Size of a memory budget of requests in flight: publish (native API), kafka_produce.", []string{"budget"}, nil)
	budgetInUse = prometheus.NewDesc("spool_memory_budget_in_use_bytes",
		"Bytes of a memory budget held by requests in flight now.", []string{"budget"}, nil)
	budgetWaits = prometheus.NewDesc("spool_memory_budget_waits_total",
		"Requests that waited, unread, for room in a memory budget (backpressure).", []string{"budget"}, nil)
	budgetWaitSeconds = prometheus.NewDesc("spool_memory_budget_wait_seconds_total",
		"Time requests waited for room in a memory budget, added up.", []string{"budget"}, nil)
	budgetRefused = prometheus.NewDesc("spool_memory_budget_refused_total",
		"Requests refused (resource_exhausted, retriable) because a memory budget that does not wait was spent: publish_intake.", []string{"budget"}, nil)
	memoryLimit = prometheus.NewDesc("spool_memory_limit_bytes",
		"The Go runtime's soft memory limit in effect (memory.limit, or GOMEMLIMIT when set).", nil, nil)
)

// budgetCollector reads the memory budgets at scrape time.
type budgetCollector struct {
	mu      sync.Mutex
	budgets map[string]*membudget.Budget
	limit   func() int64 // nil: not reported
}

// BindBudget reports the memory budget b under name.
func (t *Telemetry) BindBudget(name string, b *membudget.Budget) {
	t.budgets.mu.Lock()
	defer t.budgets.mu.Unlock()
	if t.budgets.budgets == nil {
		t.budgets.budgets = map[string]*membudget.Budget{}
	}
	t.budgets.budgets[name] = b
}

// BindMemoryLimit reports the runtime's memory limit that f returns.
func (t *Telemetry) BindMemoryLimit(f func() int64) {
	t.budgets.mu.Lock()
	defer t.budgets.mu.Unlock()
	t.budgets.limit = f
}

func (c *budgetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- budgetLimit
	ch <- budgetInUse
	ch <- budgetWaits
	ch <- budgetWaitSeconds
	ch <- budgetRefused
	ch <- memoryLimit
}

func (c *budgetCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	names := make([]string, 0, len(c.budgets))
	for n := range c.budgets {
		names = append(names, n)
	}
	sort.Strings(names)
	stats := make([]membudget.Stats, len(names))
	for i, n := range names {
		stats[i] = c.budgets[n].Stats()
	}
	limit := c.limit
	c.mu.Unlock()
	for i, n := range names {
		st := stats[i]
		ch <- prometheus.MustNewConstMetric(budgetLimit, prometheus.GaugeValue, float64(st.Limit), n)
		ch <- prometheus.MustNewConstMetric(budgetInUse, prometheus.GaugeValue, float64(st.InUse), n)
		ch <- prometheus.MustNewConstMetric(budgetWaits, prometheus.CounterValue, float64(st.Waits), n)
		ch <- prometheus.MustNewConstMetric(budgetWaitSeconds, prometheus.CounterValue, st.WaitTime.Seconds(), n)
		ch <- prometheus.MustNewConstMetric(budgetRefused, prometheus.CounterValue, float64(st.Refused), n)
	}
	if limit != nil {
		ch <- prometheus.MustNewConstMetric(memoryLimit, prometheus.GaugeValue, float64(limit()))
	}
}
