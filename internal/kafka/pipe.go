package kafka

import (
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// maxPipelinedProduces bounds the Produce requests of one connection that
// are queued in the logs but not yet answered: the reader stops reading
// (and TCP pushes back on the client) beyond it. Kafka clients keep at most
// five in flight per connection by default.
const maxPipelinedProduces = 8

// producePipe answers a connection's pipelined Produce requests: the
// connection's loop pushes each queued produce, and the writer goroutine
// waits for it to be durable and writes its response, in order. The loop
// writes to the connection only after drain, so the two never write at
// once.
type producePipe struct {
	c    *conn
	q    chan pipedProduce
	done chan struct{} // closed when the writer exits

	mu      sync.Mutex
	cond    *sync.Cond
	pending int  // pushed, not yet answered
	failed  bool // a write failed: the connection is closed
}

type pipedProduce struct {
	h      reqHeader
	finish func() kmsg.Response
}

func newProducePipe(c *conn) *producePipe {
	pp := &producePipe{c: c, q: make(chan pipedProduce, maxPipelinedProduces), done: make(chan struct{})}
	pp.cond = sync.NewCond(&pp.mu)
	go pp.run()
	return pp
}

// push hands a queued produce to the writer; false when the writer has
// failed. It blocks while maxPipelinedProduces are unanswered.
func (pp *producePipe) push(h reqHeader, finish func() kmsg.Response) bool {
	pp.mu.Lock()
	if pp.failed {
		pp.mu.Unlock()
		finish() // wait for the appends all the same: nothing is left behind
		return false
	}
	pp.pending++
	pp.mu.Unlock()
	pp.q <- pipedProduce{h, finish}
	return true
}

// drain waits until every pushed produce has been answered; false when
// the writer has failed.
func (pp *producePipe) drain() bool {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	for pp.pending > 0 && !pp.failed {
		pp.cond.Wait()
	}
	return !pp.failed
}

// close answers what was pushed and stops the writer.
func (pp *producePipe) close() {
	close(pp.q)
	<-pp.done
}

func (pp *producePipe) run() {
	defer close(pp.done)
	for p := range pp.q {
		resp := p.finish()
		pp.mu.Lock()
		failed := pp.failed
		pp.mu.Unlock()
		if !failed {
			pp.c.s.answered(p.h, resp)
		}
		if resp != nil && !failed {
			if err := pp.c.writeResponse(p.h, resp); err != nil {
				pp.mu.Lock()
				pp.failed = true
				pp.mu.Unlock()
				pp.c.nc.Close() // the reader's next read fails
			}
		}
		pp.mu.Lock()
		pp.pending--
		pp.cond.Broadcast()
		pp.mu.Unlock()
	}
}
