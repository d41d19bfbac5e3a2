package actors

import (
	"crypto/rand"
	"encoding/hex"

	"github.com/quicpool/quicpool/internal/wire"
)

// heldMargin is how many handshaken streams a connection may have waiting for room beyond its
// share; more are refused at once (the client sees them reset and tries again later).
const heldMargin = 16

// issuer is the server's ID issuance: the IDs issued to streams still finishing their handshake.
// The handshaken streams waiting for room are held per connection (shardLoad.held).
//
// Fair share: with n connections up, none may hold more than MaxCap / n idle or reserved
// streams, whatever the order in which they came. When a connection arrives, the others give
// back their oldest idle streams beyond the new share (reset both ways, counted), so the newcomer
// reaches its share as fast as its streams arrive; room goes to the connection furthest below
// its share.
type issuer struct {
	reserved   map[string]*shardLoad // ID -> the shard whose stream it was issued to
	issuedZero bool                  // the control ID has been issued and its stream lives (or is in use)
	reclaimed  uint64                // idle streams taken back from connections above their share
}

func newIssuer() issuer { return issuer{reserved: make(map[string]*shardLoad)} }

// reserve answers a handshaken stream's request for an ID at once if its connection has room for
// it, and holds it until room frees up otherwise (see grantHeld). A stream whose connection is not
// up (any more), or that already has its share and a margin waiting, gets no ID.
func (c *coordinator) reserve(m reserveID) {
	st := c.shards[m.shard.ID]
	switch {
	case st == nil:
		deliver(m.reply, "")
	case c.fits(st):
		c.grant(m, st)
	case len(st.held) >= c.fairShare()+heldMargin:
		deliver(m.reply, "")
	default:
		st.held = append(st.held, m)
	}
}

// holds is how many streams st holds or is being issued: its idle and reserved ones.
func holds(st *shardLoad) int { return st.idle + st.reserved }

// fits reports whether st may have one more stream: the pool holds fewer than MaxCap idle or
// reserved streams, and st fewer than its share.
func (c *coordinator) fits(st *shardLoad) bool {
	return c.idle.usable+len(c.issuer.reserved) < c.rt.MaxCap && holds(st) < c.fairShare()
}

// fairShare is the most one connection may hold: MaxCap over the connections up, so that a
// client alone uses the whole pool.
func (c *coordinator) fairShare() int {
	n := max(len(c.shards), 1)
	return (c.rt.MaxCap + n - 1) / n
}

// grantHeld gives room to held streams, one at a time to the connection furthest below its share
// that has one waiting: O(connections) per grant, whatever the number of held streams.
func (c *coordinator) grantHeld() {
	for {
		var best *shardLoad
		for _, st := range c.shards {
			c.dropAbandoned(st)
			if len(st.held) > 0 && c.fits(st) && (best == nil || holds(st) < holds(best)) {
				best = st
			}
		}
		if best == nil {
			return
		}
		m := best.held[0]
		best.held[0] = reserveID{}
		best.held = best.held[1:]
		c.grant(m, best)
	}
}

// dropAbandoned drops the held requests at the head of st's queue whose stream gave up.
func (c *coordinator) dropAbandoned(st *shardLoad) {
	for len(st.held) > 0 && len(st.held[0].reply) > 0 {
		st.held[0] = reserveID{}
		st.held = st.held[1:]
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
	for _, st := range c.shards {
		for holds(st) > share && st.idle > 0 {
			id, e, _ := c.idle.oldestOf(st)
			e.unwatch()
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
	for _, st := range c.shards {
		n += len(st.held)
	}
	return n
}

// dropHeld answers every held request of a connection that went down: no ID.
func dropHeld(st *shardLoad) {
	for _, m := range st.held {
		deliver(m.reply, "")
	}
	st.held = nil
}

// grant issues an ID to m: the control ID first, then random IDs unique among the streams the
// pool holds or is issuing to. The control ID is never issued while a stream with it is idle,
// peer-closed or reserved: it exists once. If m's stream gave up meanwhile, nothing is issued.
func (c *coordinator) grant(m reserveID, st *shardLoad) {
	id := wire.ControlID
	if _, reserved := c.issuer.reserved[id]; c.issuer.issuedZero || reserved || c.idle.has(id) {
		var raw [wire.IDLen]byte
		for {
			_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails (Go 1.24+)
			id = hex.EncodeToString(raw[:])
			if _, taken := c.issuer.reserved[id]; !taken && !c.idle.has(id) && id != wire.ControlID {
				break
			}
		}
	}
	if !deliver(m.reply, id) {
		return
	}
	c.issuer.issuedZero = true
	c.issuer.reserved[id] = st
	st.reserved++
}

// release ends the reservation of a stream that will not become idle: its room goes to a held
// stream, and a released control ID is issued again (the control stream must exist once). Only
// the shard the ID was issued to may release it.
func (c *coordinator) release(m releaseID) {
	if st := c.shards[m.shard.ID]; st != nil && c.unreserve(m.id, st) {
		if m.id == wire.ControlID {
			c.issuer.issuedZero = false
		}
		c.grantHeld()
	}
}

// unreserve ends id's reservation if it was issued to st.
func (c *coordinator) unreserve(id string, st *shardLoad) bool {
	if c.issuer.reserved[id] != st {
		return false
	}
	delete(c.issuer.reserved, id)
	st.reserved--
	return true
}

// dropReservations ends the reservations and holds of a connection that went down.
func (c *coordinator) dropReservations(st *shardLoad) {
	for id, owner := range c.issuer.reserved {
		if owner == st {
			delete(c.issuer.reserved, id)
			if id == wire.ControlID {
				c.issuer.issuedZero = false
			}
		}
	}
	st.reserved = 0
	dropHeld(st)
}
