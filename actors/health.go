package actors

import (
	"fmt"
	"time"

	"github.com/quicpool/quicpool/internal/core"
	"github.com/quicpool/quicpool/internal/wire"
	"github.com/quicpool/quicpool/messages"
)

// The coordinator's view of the pool's health: why it cannot serve (its condition), which
// connections answer, and what callers get meanwhile.

// listening records that a server pool listens on addr: it serves again if it could not.
func (c *coordinator) listening(addr string) {
	c.listenAddr = addr
	c.setCondition(condition{})
}

// setCondition records the pool's condition and acts on a change: calls that must fail now are
// failed, and the change is broadcast.
func (c *coordinator) setCondition(next condition) {
	if c.rt.Err != nil {
		return // an invalid configuration stays the condition for good
	}
	was := c.cond
	c.cond = next
	switch {
	case next.failFast && !was.failFast:
		c.rt.Log.Error("pool unavailable: calls fail at once until a connection is up", "err", next.err)
		c.rt.emit(c.engine, messages.Event{Kind: messages.EventUnavailable, Slot: -1, Err: next.err})
	case was.failFast && next.err == nil:
		c.rt.Log.Info("pool recovered")
		c.rt.emit(c.engine, messages.Event{Kind: messages.EventRecovered, Slot: -1})
	}
	if err := c.failFast(); err != nil {
		c.waiters.failAll(err)
	}
	c.checkReady()
}

// errNow is why the pool cannot serve now, or nil (see messages.Stats.Err).
func (c *coordinator) errNow() error {
	if !c.rt.Client || c.shards.count() == 0 {
		return c.cond.err
	}
	var silent *shardLoad
	for _, st := range c.shards.all {
		if !st.suspect {
			return nil
		}
		if silent == nil || st.heard.After(silent.heard) {
			silent = st
		}
	}
	return fmt.Errorf("%w: %w", core.ErrUnavailable, &core.SilentError{Since: silent.heard})
}

// dialFailed records why a client has no connection while its shards keep dialing.
func (c *coordinator) dialFailed(err error) {
	if c.shards.count() == 0 && !c.cond.failFast {
		c.cond.err = fmt.Errorf("%w: %w", core.ErrUnavailable, err)
	}
}

// liveness records when a connection's peer was last heard, and withholds its streams while it
// is silent: callers get another connection's streams, or wait.
func (c *coordinator) liveness(m liveness) {
	st := c.shards.of(m.shard)
	if st == nil {
		return
	}
	st.heard, st.peerSilent = m.heard, m.suspect
	c.withhold(st)
}

// formerChanged records that a server connection became its slot's former one (its client's
// newer connection took the slot) or took its slot back: a former connection's streams are
// withheld, and it has no share of the pool.
func (c *coordinator) formerChanged(m formerConn) {
	st := c.shards.of(m.shard)
	if st == nil || st.former == m.former {
		return
	}
	st.former = m.former
	if m.former {
		c.formers++
	} else {
		c.formers--
	}
	c.withhold(st)
}

// withhold withholds st's streams while its peer is silent or it is a server's former connection,
// and hands them out again once neither holds.
func (c *coordinator) withhold(st *shardLoad) {
	suspect := st.peerSilent || st.former
	if st.suspect == suspect {
		return
	}
	c.idle.setSuspect(st, suspect)
	if suspect {
		c.silent++
	} else {
		c.silent--
	}
	if suspect {
		c.replenish() // the live connections make up for the silent one's streams
		return
	}
	c.serveWaiting()
	// What could not be made up while it was silent is made up now: a server's streams held
	// meanwhile get their IDs; a client opens what it lacks (with its only connection silent,
	// streams lost meanwhile could not be replaced).
	c.replenish()
}

// serveWaiting hands streams that became usable to the callers waiting for them.
func (c *coordinator) serveWaiting() {
	now := time.Now()
	for id := range c.waiters.byID {
		k, ok := key(id)
		if !ok {
			continue // never filed: get answers a malformed ID at once
		}
		if _, ok := c.lookUp(id, k); ok {
			c.serveCallersOf(id, k, now)
		}
	}
	for len(c.waiters.any) > 0 {
		id, e, ok := c.takeAny()
		if !ok {
			break
		}
		g, ok := c.waiters.nextAny(now)
		if !ok {
			c.idle.add(id, e)
			break
		}
		c.handOut(id, e, g)
	}
	c.checkReady()
}

// serveCallersOf hands the stream id (filed under k), if it is held on a connection that answers,
// to the first of the callers waiting for that ID who takes it. Only those: a stream the peer
// closed is theirs alone, and callers that take any get usable streams (takeAny).
func (c *coordinator) serveCallersOf(id string, k wire.Key, now time.Time) {
	for {
		if e, ok := c.idle.byID[k]; !ok || e.shard.suspect {
			return
		}
		g, ok := c.waiters.nextFor(id, now)
		if !ok || c.handOutByID(id, k, g) {
			return
		}
	}
}

// failFast is the error that fails a call at once instead of letting it wait, or nil.
func (c *coordinator) failFast() error {
	if c.cond.failFast {
		return c.errNow()
	}
	return nil
}

// timeout is the answer to a NoWait request that finds no stream: ErrTimeout, and why the pool
// cannot serve if it cannot.
func (c *coordinator) timeout() error {
	if err := c.errNow(); err != nil {
		return fmt.Errorf("%w: %w", core.ErrTimeout, err)
	}
	return core.ErrTimeout
}
