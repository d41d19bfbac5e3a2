package actors

import (
	"time"

	"github.com/quicpool/quicpool/internal/wire"
	"github.com/quicpool/quicpool/messages"
)

// sweepEvery is how many requests may be filed between two sweeps of the expired ones.
const sweepEvery = 1024

// waiters are the Get requests waiting for a stream, in arrival order: those that want any
// stream, and those that want one ID. A request whose caller gave up (it abandoned its reply slot,
// or its deadline passed) is skipped when its turn comes and swept out now and then.
type waiters struct {
	any        []waiter
	byID       map[string][]waiter
	n          int // requests filed, swept or not
	sinceSweep int
}

// waiter is a filed request and when the pool received it.
type waiter struct {
	messages.Get
	since time.Time
}

// gone reports whether nobody waits for g any more.
func gone(g waiter, now time.Time) bool {
	return len(g.Reply) > 0 || (!g.Deadline.IsZero() && !now.Before(g.Deadline))
}

// add files g, received at since.
func (w *waiters) add(get messages.Get, since time.Time) {
	g := waiter{Get: get, since: since}
	if g.ID == "" {
		w.any = append(w.any, g)
	} else {
		if w.byID == nil {
			w.byID = make(map[string][]waiter)
		}
		w.byID[g.ID] = append(w.byID[g.ID], g)
	}
	w.n++
	if w.sinceSweep++; w.sinceSweep >= sweepEvery {
		w.sweep(time.Now())
	}
}

// next pops the request that should receive stream id: the oldest one waiting for that ID, else
// the oldest one waiting for any stream (never for the control stream).
func (w *waiters) next(id string, now time.Time) (waiter, bool) {
	if g, ok := w.nextFor(id, now); ok || id == wire.ControlID {
		return g, ok
	}
	return w.nextAny(now)
}

// nextFor pops the oldest request waiting for stream id whose caller still waits.
func (w *waiters) nextFor(id string, now time.Time) (waiter, bool) {
	q, ok := w.byID[id]
	if !ok {
		return waiter{}, false
	}
	for len(q) > 0 {
		g := q[0]
		q = q[1:]
		w.n--
		if !gone(g, now) {
			w.setID(id, q)
			return g, true
		}
	}
	delete(w.byID, id)
	return waiter{}, false
}

// nextAny pops the oldest request waiting for any stream whose caller still waits.
func (w *waiters) nextAny(now time.Time) (waiter, bool) {
	for len(w.any) > 0 {
		g := w.any[0]
		w.any[0] = waiter{}
		w.any = w.any[1:]
		w.n--
		if !gone(g, now) {
			return g, true
		}
	}
	return waiter{}, false
}

func (w *waiters) setID(id string, q []waiter) {
	if len(q) == 0 {
		delete(w.byID, id)
	} else {
		w.byID[id] = q
	}
}

// failID answers every request waiting for id with err.
func (w *waiters) failID(id string, err error) {
	for _, g := range w.byID[id] {
		deliver(g.Reply, messages.Stream{ID: id, Err: err})
		w.n--
	}
	delete(w.byID, id)
}

// failAll answers every request with err.
func (w *waiters) failAll(err error) {
	for _, g := range w.any {
		deliver(g.Reply, messages.Stream{Err: err})
	}
	for id, q := range w.byID {
		for _, g := range q {
			deliver(g.Reply, messages.Stream{ID: id, Err: err})
		}
	}
	w.any, w.byID, w.n = nil, nil, 0
}

// sweep drops the requests whose callers have gone.
func (w *waiters) sweep(now time.Time) {
	w.sinceSweep = 0
	live := w.any[:0]
	for _, g := range w.any {
		if !gone(g, now) {
			live = append(live, g)
		}
	}
	clear(w.any[len(live):])
	w.any = live
	w.n = len(live)
	for id, q := range w.byID {
		kept := q[:0]
		for _, g := range q {
			if !gone(g, now) {
				kept = append(kept, g)
			}
		}
		clear(q[len(kept):])
		w.setID(id, kept)
		w.n += len(kept)
	}
}
