package actors

import (
	"crypto/rand"
	"encoding/hex"

	"github.com/quicpool/quicpool/internal/wire"
)

// issuer is the server's ID issuance: the IDs issued to streams still finishing their handshake,
// and the handshaken streams held until the pool has room for them.
type issuer struct {
	reserved   map[string]*shardLoad // ID -> the shard whose stream it was issued to
	held       []reserveID
	issuedZero bool // the control ID has been issued and its stream lives (or is in use)
}

func newIssuer() issuer { return issuer{reserved: make(map[string]*shardLoad)} }

// reserve answers a handshaken stream's request for an ID at once if the pool has room for it,
// and holds it until room frees up otherwise (see grantHeld). A stream whose connection is not
// up (any more) gets no ID.
func (c *coordinator) reserve(m reserveID) {
	st := c.shards[m.shard.ID]
	switch {
	case st == nil:
		deliver(m.reply, "")
	case c.fits(st):
		c.grant(m, st)
	default:
		c.issuer.held = append(c.issuer.held, m)
	}
}

// fits reports whether st may have one more stream: the pool holds fewer than MaxCap idle or
// reserved streams, and no connection holds more than its share, MaxCap / connections up.
func (c *coordinator) fits(st *shardLoad) bool {
	if c.idle.usable+len(c.issuer.reserved) >= c.rt.MaxCap {
		return false
	}
	share := (c.rt.MaxCap + len(c.shards) - 1) / len(c.shards)
	return st.idle+st.reserved < share
}

// grantHeld gives IDs to held streams, oldest first, as far as there is room; a stream whose
// connection is over its share waits while others go ahead. Requests whose stream gave up or
// whose connection is gone are dropped.
func (c *coordinator) grantHeld() {
	if len(c.issuer.held) == 0 {
		return
	}
	kept := c.issuer.held[:0]
	for _, m := range c.issuer.held {
		st := c.shards[m.shard.ID]
		switch {
		case len(m.reply) > 0 || st == nil:
			deliver(m.reply, "") // abandoned, or the connection is gone
		case c.fits(st):
			c.grant(m, st)
		default:
			kept = append(kept, m)
		}
	}
	clear(c.issuer.held[len(kept):])
	c.issuer.held = kept
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

// dropReservations ends the reservations of a connection that went down.
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
}
