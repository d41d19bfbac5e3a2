package actors

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool/internal/core"
	"github.com/quicpool/quicpool/internal/wire"
)

// heldMargin is how many handshaken streams a connection may have waiting for room beyond its
// share; more are refused at once (reset both ways: the client tries again later).
const heldMargin = 16

// errNoRoom is why a handshaken stream was refused: the pool had no room for it (fits), and its
// connection already had as many streams waiting for room as it may (its fair share and
// heldMargin more).
var errNoRoom = fmt.Errorf("%w: no room for the stream, and its connection has as many waiting as it may",
	core.ErrPoolFull)

// issuer is the server's ID issuance. The coordinator issues an ID, writes it to the stream
// (a non-blocking write of 4 bytes to a fresh stream) and files the stream in one step, so an ID
// is never reserved for a stream that is not yet idle: the control ID cannot be issued twice.
// The handshaken streams waiting for room are held per connection (shardLoad.held), without a
// goroutine each.
//
// Fair share: with n connections up, none may hold more than MaxCap / n idle streams, whatever
// the order in which they came. When a connection arrives, the others give back their oldest
// idle streams beyond the new share (reset both ways, counted), so the newcomer reaches its
// share as fast as its streams arrive; room goes to the connection furthest below its share.
type issuer struct {
	issuedZero bool   // the control ID has been issued: it is never issued again
	reclaimed  uint64 // idle streams taken back from connections above their share
	random     [64 * wire.IDLen]byte
	unused     int // bytes of random not yet used, at its end
}

// randomID returns IDLen random bytes. It reads crypto/rand for 64 IDs at a time: one read per
// ID was a visible share of the server's hot path.
func (is *issuer) randomID() (raw [wire.IDLen]byte) {
	if is.unused < wire.IDLen {
		_, _ = rand.Read(is.random[:]) // crypto/rand.Read never fails (Go 1.24+)
		is.unused = len(is.random)
	}
	copy(raw[:], is.random[len(is.random)-is.unused:])
	is.unused -= wire.IDLen
	return raw
}

// handshakeFailed counts a server stream that failed its handshake (its shard discarded it) and
// logs why at Debug level, as every stream refusal: a peer that sends garbage must not fill the
// log.
func (c *coordinator) handshakeFailed(m handshakeFailed) {
	c.noteFailure(c.shards.of(m.shard))
	c.rt.Log.Debug("stream refused", "err", m.err)
}

// heldStream is a handshaken stream waiting for room, and since when.
type heldStream struct {
	stream *quic.Stream
	since  time.Time
}

// handshaken issues an ID to each stream whose handshake byte arrived, at once if its connection
// has room for it; holds it until room frees up otherwise (see grantHeld); and refuses it if its
// connection already has its share and heldMargin streams waiting, or is down.
func (c *coordinator) handshaken(m handshaken) {
	st := c.shards.of(m.shard)
	for _, stream := range m.streams {
		switch {
		case st == nil:
			wire.Discard(stream)
			c.noteFailure(nil)
		case c.fits(st):
			c.issue(stream, st)
		case len(st.held) >= c.fairShare()+heldMargin:
			wire.Discard(stream)
			c.noteFailure(st)
			c.rt.Log.Debug("stream refused", "slot", st.slot, "err", errNoRoom)
		default:
			st.held = append(st.held, heldStream{stream: stream, since: time.Now()})
		}
	}
}

// fits reports whether st may have one more idle stream: its connection answers, the pool holds
// fewer than MaxCap, and st fewer than its share. A silent connection's new streams are held
// (bounded like any connection's) until it answers again: its idle streams are not counted while
// it is silent, so its share would not bound them, and the IDs may never reach its client.
func (c *coordinator) fits(st *shardLoad) bool {
	return !st.suspect && c.idle.usable < c.rt.MaxCap && st.idle < c.fairShare()
}

// fairShare is the most one connection may hold: MaxCap over the connections up, former ones
// apart, so that a client alone uses the whole pool, the connections it left behind when it
// reconnected included.
func (c *coordinator) fairShare() int {
	n := max(c.shards.count()-c.formers, 1)
	return (c.rt.MaxCap + n - 1) / n
}

// issue gives stream an ID, writes it without blocking, and files the stream as idle (or hands
// it to a caller waiting for it). The control ID goes first, once; then random IDs unique among
// the streams the pool holds. A stream whose ID cannot be written at once (its client reset it,
// or the connection is out of flow-control credit) is discarded and counted.
func (c *coordinator) issue(stream *quic.Stream, st *shardLoad) {
	id, raw := wire.ControlID, [wire.IDLen]byte{}
	if c.issuer.issuedZero || c.idle.has(id) {
		for {
			raw = c.issuer.randomID()
			id = hex.EncodeToString(raw[:])
			if !c.idle.has(id) && id != wire.ControlID {
				break
			}
		}
	}
	if err := stream.TryWriteAll(raw[:]); err != nil {
		wire.Discard(stream)
		c.noteFailure(st)
		return
	}
	if id == wire.ControlID {
		c.issuer.issuedZero = true
	}
	c.fileReady(st, id, stream)
}

// grantHeld gives room to held streams, one at a time to the connection furthest below its share
// that has one waiting (of equals, the one that came up first): O(connections) per grant,
// whatever the number of held streams. A held stream whose client gave up on it is discarded on
// the way.
func (c *coordinator) grantHeld() {
	for {
		var best *shardLoad
		for _, st := range c.shards.all {
			if len(st.held) > 0 && c.fits(st) && (best == nil || st.idle < best.idle) {
				best = st
			}
		}
		if best == nil {
			return
		}
		h := best.popHeld()
		if h.stream.Context().Err() != nil { // the client reset it: it gave up waiting
			wire.Discard(h.stream)
			c.noteFailure(best)
			continue
		}
		c.issue(h.stream, best)
	}
}

func (st *shardLoad) popHeld() heldStream {
	h := st.held[0]
	st.held[0] = heldStream{}
	st.held = st.held[1:]
	return h
}

// expireHeld refuses the streams held for longer than HoldTimeout (reset both ways, counted): the
// client opens others later.
func (c *coordinator) expireHeld(now time.Time) {
	for _, st := range c.shards.all {
		for len(st.held) > 0 && now.Sub(st.held[0].since) >= c.rt.HoldTimeout {
			wire.Discard(st.popHeld().stream)
			c.noteFailure(st)
		}
	}
}

// reclaim takes back idle streams from every connection above its share (the oldest first, reset
// both ways, counted): after a connection arrives the others shrink to their new share at once,
// so the newcomer has room whatever the order of arrival.
func (c *coordinator) reclaim() {
	if c.rt.Client {
		return // a client spreads its own streams over its connections (refill.go)
	}
	share := c.fairShare()
	for _, st := range c.shards.all {
		for st.idle > share {
			id, e, _ := c.idle.oldestOf(st)
			wire.Discard(e.stream)
			c.stats.discarded++
			c.issuer.reclaimed++
			c.streamGone(id)
			if c.issuer.reclaimed&(c.issuer.reclaimed-1) == 0 {
				c.rt.Log.Info("took back idle streams from a connection above its share", "slot", st.slot,
					"share", share, "taken back so far", c.issuer.reclaimed)
			}
		}
	}
}

// heldCount is the number of handshaken streams waiting for room.
func (c *coordinator) heldCount() int {
	n := 0
	for _, st := range c.shards.all {
		n += len(st.held)
	}
	return n
}

// dropHeld forgets the held streams of a connection that went down: they die with it.
func dropHeld(st *shardLoad) {
	clear(st.held)
	st.held = nil
}
