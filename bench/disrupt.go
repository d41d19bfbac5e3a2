package main

import (
	"errors"
	"sync"
	"time"
)

// ---------------------------------------------------------------------------------------------
// What the crash and outage workloads share: ops run back to back, each with its own bound,
// across a disruption, counting those that fail and those that hang.

// disruptOp bounds each op of the crash and outage workloads: its Gets, its writes and its reads
// together.
const disruptOp = 2 * time.Second

// hangGrace is how long past its bound an op may run before it counts as hung.
const hangGrace = time.Second

// DisruptionResult is one run of the crash or the outage workload.
type DisruptionResult struct {
	Impl   string
	Down   time.Duration // crash: how long the server was dead; outage: how long the path dropped everything
	Served time.Duration // from the server's restart (the path's restore) until an op succeeded
	OK     bool          // an op succeeded within the wait
	Failed int           // ops that failed within their bound, from the kill (the cut) until the first success
	Hung   int           // ops that had not returned hangGrace after their bound, over the same time

	// The outage's bulk transfer: from the restore until the stream moved data again.
	Bulk    time.Duration
	BulkOK  bool
	BulkErr string // the bulk stream failed instead

	Err string // the run could not start
}

// errHung is an op that had not returned hangGrace after its bound.
var errHung = errors.New("hung")

// opLoop runs op back to back in a goroutine until stop, each call bounded by disruptOp, and
// counts the failures and hangs. Once back is set (the server or the path is back), the first op
// that succeeds ends the loop, and served says when it ended.
type opLoop struct {
	op     func(timeout time.Duration) error
	done   chan struct{} // closed when the loop has returned
	served chan struct{} // closed when an op succeeded after back was set
	stopCh chan struct{}

	mu           sync.Mutex
	back, at     time.Time // back: set by setBack; at: when the first op after it succeeded
	failed, hung int
	stopOnce     sync.Once
}

func startOpLoop(op func(timeout time.Duration) error) *opLoop {
	l := &opLoop{op: op, done: make(chan struct{}), served: make(chan struct{}), stopCh: make(chan struct{})}
	go l.run()
	return l
}

func (l *opLoop) run() {
	defer close(l.done)
	for {
		select {
		case <-l.stopCh:
			return
		default:
		}
		res := make(chan error, 1)
		go func() { res <- l.op(disruptOp) }()
		var err error
		select {
		case err = <-res:
		case <-time.After(disruptOp + hangGrace):
			err = errHung // left running: it ends when the library gives up, if ever
		}
		end := time.Now()
		l.mu.Lock()
		switch {
		case errors.Is(err, errHung):
			l.hung++
		case err != nil:
			l.failed++
		case !l.back.IsZero():
			l.at = end
			close(l.served)
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
		if err != nil {
			select {
			case <-l.stopCh:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
}

// setBack marks the moment the server or the path came back.
func (l *opLoop) setBack(t time.Time) {
	l.mu.Lock()
	l.back = t
	l.mu.Unlock()
}

// wait waits until an op succeeded after back, at most until deadline, then stops the loop (and
// waits for it, bounded by one op) and writes the counts into r.
func (l *opLoop) wait(deadline time.Time, r *DisruptionResult) {
	select {
	case <-l.served:
	case <-time.After(time.Until(deadline)):
	}
	l.stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	r.Failed, r.Hung = l.failed, l.hung
	if !l.at.IsZero() && !l.at.After(deadline) {
		r.OK, r.Served = true, max(l.at.Sub(l.back), 0)
	}
}

// stop stops the loop and waits for it to return, at most one op's bound and grace.
func (l *opLoop) stop() {
	l.stopOnce.Do(func() { close(l.stopCh) })
	select {
	case <-l.done:
	case <-time.After(disruptOp + 2*hangGrace):
	}
}
