package actors

import (
	"context"
	"time"
)

// workerIdle is how long a worker waits for its next job before it exits.
const workerIdle = 250 * time.Millisecond

// workers runs a shard's blocking stream work (a client's opens and late IDs, a server's late
// handshake bytes) on long-lived goroutines, at most max at a time. A goroutine keeps its stack
// from one job to the next, where a goroutine per job starts with a small stack and grows it
// again every time (a copy of the whole stack each time it doubles). A worker that has had
// nothing to do for workerIdle exits. A workers value belongs to the one goroutine or actor that
// calls run and tryRun (which count and start workers); offer, which only sends on the jobs
// channel, is safe from anywhere. The workers themselves only receive jobs and report their
// exit.
type workers struct {
	rt     *runtime
	ctx    context.Context // the shard's: workers exit when it ends
	max    int
	n      int // workers running, as the owner last learned
	jobs   chan func()
	exited chan struct{} // one value per worker that exited
}

func newWorkers(rt *runtime, ctx context.Context, max int) *workers {
	return &workers{rt: rt, ctx: ctx, max: max, jobs: make(chan func()), exited: make(chan struct{}, max)}
}

// tryRun hands job to an idle worker, or starts a worker for it if fewer than max run; it
// reports false, without running job, if max workers are busy.
func (w *workers) tryRun(job func()) bool {
	if w.offer(job) {
		return true
	}
	for {
		select {
		case <-w.exited:
			w.n--
			continue
		default:
		}
		break
	}
	if w.n >= w.max {
		return false
	}
	w.n++
	w.rt.Go(func() { w.work(job) })
	return true
}

// offer hands job to a worker that is idle now, and reports false if none is. Unlike tryRun it
// never starts a worker, so anyone may call it (the coordinator does, through an opener).
func (w *workers) offer(job func()) bool {
	select {
	case w.jobs <- job:
		return true
	default:
		return false
	}
}

// run is tryRun that waits while max workers are busy; it reports false if the shard ended
// first.
func (w *workers) run(job func()) bool {
	if w.tryRun(job) {
		return true
	}
	select {
	case w.jobs <- job:
		return true
	case <-w.exited:
		w.n--
		return w.tryRun(job)
	case <-w.ctx.Done():
		return false
	}
}

func (w *workers) work(job func()) {
	defer func() { w.exited <- struct{}{} }() // buffered for every worker: never blocks
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		job()
		idle.Reset(workerIdle)
		select {
		case job = <-w.jobs:
		case <-idle.C:
			return
		case <-w.ctx.Done():
			return
		}
	}
}
