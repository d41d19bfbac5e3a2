package actors

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool/internal/core"
	"github.com/quicpool/quicpool/internal/wire"
)

const (
	// defaultPeerClosedGrace is how long a stream the peer closed before this side took it stays
	// reachable by ID (core.Config.PeerClosedGrace): the peer may have written data for the
	// caller who will ask for it.
	defaultPeerClosedGrace = 10 * time.Second
	// minGoneMemory is the fewest discarded IDs a pool remembers, so that asking for one fails
	// with ErrStreamGone at once instead of waiting; a pool remembers 2 x maxCap if that is more
	// (newGoneIDs), enough for a flush of everything it holds.
	minGoneMemory = 4096
	// peerCheckInterval is how often the coordinator looks for idle streams the peer stopped
	// reading (checkPeers). A hand-out looks at its stream first, so the interval bounds how soon
	// such a stream is replaced and counted, not whether a caller gets a dead one.
	peerCheckInterval = 250 * time.Millisecond
	// handOutRun is the most streams a peer's hand-outs take in a row from one of its connections.
	handOutRun = 16
)

// idleStream is one stream in the pool's hands.
type idleStream struct {
	stream *quic.Stream
	shard  *shardLoad
}

// idleStreams is the coordinator's store of idle streams: by ID, and for the callers that take
// any stream, per connection in arrival order (shardLoad.queue). A caller that takes any stream
// gets one from the next peer address in turn, and within that peer from its connections in
// turn, up to handOutRun in a row from one: no client monopolises what the application takes,
// however many connections it holds, and one client's streams spread over its connections, while
// streams taken together share their packets and acknowledgements. Taken one connection after
// the other, 64 callers on 64 connections cost twice the packets and CPU per op of 64 callers on
// one.
//
// Streams are filed under their wire.Key, not their string ID: an idle stream costs the store
// about 60 bytes (a map slot and a queue entry) instead of about 145.
type idleStreams struct {
	byID map[wire.Key]idleStream
	// closedAt holds when the peer stopped reading each of byID's peer-closed streams. Such a
	// stream no longer counts as idle and is handed out by ID only, until its grace period ends.
	closedAt map[wire.Key]time.Time
	peers    []*peerConns // the peer addresses with a connection up, in the order they came
	next     int          // the peer the next hand-out starts from
	usable   int          // streams Accept may hand out: neither peer-closed nor the control stream
}

// peerConns is the connections up from one peer address (a client's; on a client, the
// server's), in the order they came up.
type peerConns struct {
	addr  netip.Addr
	conns []*shardLoad
	next  int // the connection the peer's next hand-out starts from
	run   int // hand-outs in a row from conns[next-1]
}

func newIdleStreams() idleStreams {
	return idleStreams{byID: make(map[wire.Key]idleStream), closedAt: make(map[wire.Key]time.Time)}
}

// controlKey is the control stream's Key.
var controlKey, _ = wire.KeyOf(wire.ControlID)

// key returns id's Key; ok is false when id is not an ID, which the store never holds.
func key(id string) (k wire.Key, ok bool) {
	k, err := wire.KeyOf(id)
	return k, err == nil
}

// isUsable reports whether Accept may hand out e, filed under k: not the control stream, not
// closed by the peer, and not on a connection that has gone silent (suspect).
func (is *idleStreams) isUsable(k wire.Key, e idleStream) bool {
	return k != controlKey && !is.peerClosed(k) && !e.shard.suspect
}

// peerClosed reports whether the stream filed under k is one the peer stopped reading.
func (is *idleStreams) peerClosed(k wire.Key) bool { _, ok := is.closedAt[k]; return ok }

// peerClosedCount is the number of peer-closed streams held.
func (is *idleStreams) peerClosedCount() int { return len(is.closedAt) }

// withheld is the number of idle streams held back because their connection is silent: filed,
// neither the control stream nor peer-closed, on a suspect connection.
func (is *idleStreams) withheld() int {
	n := 0
	for k, e := range is.byID {
		if e.shard.suspect && k != controlKey && !is.peerClosed(k) {
			n++
		}
	}
	return n
}

// get returns the stream id, in whatever state, without taking it.
func (is *idleStreams) get(id string) (idleStream, bool) {
	k, ok := key(id)
	if !ok {
		return idleStream{}, false
	}
	e, ok := is.byID[k]
	return e, ok
}

func (is *idleStreams) has(id string) bool { _, ok := is.get(id); return ok }

func (is *idleStreams) hasControl() bool {
	_, ok := is.byID[controlKey]
	return ok && !is.peerClosed(controlKey)
}

// add stores e under id, which is not stored yet and is an ID (the pool issued it, or read its
// IDLen bytes off the wire).
func (is *idleStreams) add(id string, e idleStream) {
	k, ok := key(id)
	if !ok {
		panic(fmt.Sprintf("idle streams: %q is not an ID", id))
	}
	is.addKey(k, e)
}

func (is *idleStreams) addKey(k wire.Key, e idleStream) {
	is.byID[k] = e
	if is.isUsable(k, e) {
		is.usable++
		e.shard.idle++
		e.shard.queue = append(e.shard.queue, k)
	}
}

// addShard and removeShard keep the peers and their connections that hand-outs go round. A
// connection belongs to the address it came up from.
func (is *idleStreams) addShard(st *shardLoad) {
	addr := netip.Addr{}
	if st.conn != nil {
		addr = addrIP(st.conn.RemoteAddr())
	}
	for _, p := range is.peers {
		if p.addr == addr {
			p.conns = append(p.conns, st)
			return
		}
	}
	is.peers = append(is.peers, &peerConns{addr: addr, conns: []*shardLoad{st}})
}

// removeShard keeps the turns where they were: the peer and the connection whose turn is next
// keep it, and a run on the removed connection ends.
func (is *idleStreams) removeShard(st *shardLoad) {
	for i, p := range is.peers {
		j := slices.Index(p.conns, st)
		if j < 0 {
			continue
		}
		p.conns = slices.Delete(p.conns, j, j+1)
		switch {
		case j < p.next-1:
			p.next--
		case j == p.next-1:
			p.next--
			p.run = handOutRun
		}
		if len(p.conns) == 0 {
			is.peers = slices.Delete(is.peers, i, i+1)
			if i < is.next {
				is.next--
			}
		}
		return
	}
}

// clearQueues empties every connection's queue.
func (is *idleStreams) clearQueues() {
	for _, p := range is.peers {
		for _, st := range p.conns {
			st.queue = nil
		}
	}
}

// take removes and returns the stream id, in whatever state.
func (is *idleStreams) take(id string) (idleStream, bool) {
	k, ok := key(id)
	if !ok {
		return idleStream{}, false
	}
	return is.takeKey(k)
}

func (is *idleStreams) takeKey(k wire.Key) (idleStream, bool) {
	e, ok := is.byID[k]
	if !ok {
		return e, false
	}
	if is.isUsable(k, e) {
		is.usable--
		e.shard.idle--
	}
	delete(is.byID, k)
	delete(is.closedAt, k)
	if st := e.shard; len(st.queue) > 64 && len(st.queue) > 2*st.idle {
		is.compact(st)
	}
	return e, true
}

// oldest removes and returns a usable stream for a caller that takes any: from the next peer in
// turn that has one, the oldest of the connection the peer's last hand-out came from, if it has
// one and gave fewer than handOutRun in a row, or else of the peer's next connection in turn that
// has one.
func (is *idleStreams) oldest() (string, idleStream, bool) {
	for range is.peers {
		is.next %= len(is.peers)
		p := is.peers[is.next]
		is.next++
		if p.run < handOutRun && p.next > 0 && p.next <= len(p.conns) {
			if id, e, ok := is.oldestOf(p.conns[p.next-1]); ok {
				p.run++
				return id, e, true
			}
		}
		for range p.conns {
			p.next %= len(p.conns)
			st := p.conns[p.next]
			p.next++
			if id, e, ok := is.oldestOf(st); ok {
				p.run = 1
				return id, e, true
			}
		}
	}
	return "", idleStream{}, false
}

// repeatTurn gives the peer of the last oldest() its turn again: the stream it took is no use.
func (is *idleStreams) repeatTurn() {
	if is.next > 0 {
		is.next--
	}
}

// oldestOf removes and returns st's usable stream that arrived first.
func (is *idleStreams) oldestOf(st *shardLoad) (string, idleStream, bool) {
	for len(st.queue) > 0 {
		k := st.queue[0]
		st.queue = st.queue[1:]
		if e, ok := is.byID[k]; ok && e.shard == st && is.isUsable(k, e) {
			e, _ = is.takeKey(k)
			return k.ID(), e, true
		}
	}
	return "", idleStream{}, false
}

// compact drops the entries of st's queue that are no longer usable streams of st.
func (is *idleStreams) compact(st *shardLoad) {
	fresh := make([]wire.Key, 0, st.idle)
	for _, k := range st.queue {
		if e, ok := is.byID[k]; ok && e.shard == st && is.isUsable(k, e) {
			fresh = append(fresh, k)
		}
	}
	st.queue = fresh
}

// setSuspect marks st's connection silent (its streams stop being usable) or alive again (they
// are usable again; their order in st's queue starts over). Peer-closed streams stay as they
// are, their time included.
func (is *idleStreams) setSuspect(st *shardLoad, suspect bool) {
	is.usable -= st.idle
	st.idle, st.queue, st.suspect = 0, nil, suspect
	for k, e := range is.byID {
		if e.shard == st && is.isUsable(k, e) {
			is.usable++
			st.idle++
			st.queue = append(st.queue, k)
		}
	}
}

// closedSince returns when the peer stopped reading the stream filed under k, or zero if it has
// not (or k is not held).
func (is *idleStreams) closedSince(k wire.Key) time.Time { return is.closedAt[k] }

// restore files e under k again as takeKey found it: closedAt is closedSince's answer then.
func (is *idleStreams) restore(k wire.Key, e idleStream, closedAt time.Time) {
	if !closedAt.IsZero() {
		is.closedAt[k] = closedAt
	}
	is.addKey(k, e)
}

// markPeerClosed turns the idle stream filed under k into a peer-closed one.
func (is *idleStreams) markPeerClosed(k wire.Key, now time.Time) {
	if e, ok := is.takeKey(k); ok {
		is.closedAt[k] = now
		is.addKey(k, e)
	}
}

// oldestPeerClosed returns the peer-closed stream that has waited longest.
func (is *idleStreams) oldestPeerClosed() (string, bool) {
	var oldest wire.Key
	var at time.Time
	for k, t := range is.closedAt {
		if at.IsZero() || t.Before(at) {
			oldest, at = k, t
		}
	}
	return oldest.ID(), !at.IsZero()
}

// expirePeerClosed discards the peer-closed streams whose grace period is over and returns
// their IDs.
func (is *idleStreams) expirePeerClosed(now time.Time, grace time.Duration) []string {
	var expired []string
	for k, at := range is.closedAt {
		if now.Sub(at) >= grace {
			expired = append(expired, k.ID())
		}
	}
	for _, id := range expired {
		e, _ := is.take(id)
		wire.Discard(e.stream)
	}
	return expired
}

// drain discards every stream, resetting each both ways, and returns their IDs.
func (is *idleStreams) drain() []string {
	ids := make([]string, 0, len(is.byID))
	for k, e := range is.byID {
		wire.Discard(e.stream)
		e.shard.idle = 0
		ids = append(ids, k.ID())
	}
	is.forget()
	return ids
}

// dropShard takes out the streams of a connection that leaves the pool, and returns their IDs.
// It resets them both ways if reset is set; otherwise the connection is closing, and its
// CONNECTION_CLOSE ends them all at once.
func (is *idleStreams) dropShard(st *shardLoad, reset bool) []string {
	var keys []wire.Key
	for k, e := range is.byID {
		if e.shard == st {
			keys = append(keys, k)
		}
	}
	ids := make([]string, len(keys))
	for i, k := range keys {
		if e, _ := is.takeKey(k); reset {
			wire.Discard(e.stream)
		}
		ids[i] = k.ID()
	}
	return ids
}

// forget drops every stream without resetting it, for a pool whose connections are closing.
func (is *idleStreams) forget() {
	clear(is.byID)
	clear(is.closedAt)
	is.clearQueues()
	is.usable = 0
}

// peerGone reports whether the peer stopped reading s (it sends STOP_SENDING, which ends the
// context of the stream's write side) or s's connection ended.
func peerGone(s *quic.Stream) bool { return s.Context().Err() != nil }

// checkPeers runs every peerCheckInterval: it finds the idle streams the peer stopped reading,
// and discards the peer-closed ones whose grace period is over. Looking at each stream's context
// costs a load per stream; a watch armed on every stream (context.AfterFunc) would cost half a
// KiB per idle stream and an allocation per hand-out.
func (c *coordinator) checkPeers() {
	if !c.stopped { // first: a panic below must not end the checks
		c.peerTimer = time.AfterFunc(peerCheckInterval, func() { c.rt.Tell(checkPeers{}) })
	}
	for _, id := range c.idle.expirePeerClosed(time.Now(), c.rt.peerClosedGrace()) {
		c.streamGone(id)
		c.stats.discarded++
	}
	var gone []string
	for k, e := range c.idle.byID {
		if !c.idle.peerClosed(k) && peerGone(e.stream) {
			gone = append(gone, k.ID())
		}
	}
	for _, id := range gone {
		c.peerStopped(id)
	}
}

// peerStopped handles an idle stream whose write side ended (peerGone); the stream stops being
// usable. If the peer's pool discarded it (wire.StreamCodeDiscarded) it is discarded here too.
// If the peer's application closed it before this side took it, it may still carry data for the
// caller who will ask for its ID: it stops counting as idle (the pool refills) but stays
// reachable by ID for its grace (runtime.peerClosedGrace). A stream ended by its connection's
// end (quic-go ends a closing connection's streams before the connection's own context) goes
// without a reset or a count: the connection's close ends it, and shardDown deals with the rest.
func (c *coordinator) peerStopped(id string) {
	k, ok := key(id)
	if !ok {
		return
	}
	e, ok := c.idle.byID[k]
	if !ok || c.idle.peerClosed(k) {
		return
	}
	var se *quic.StreamError
	switch {
	case !errors.As(context.Cause(e.stream.Context()), &se) || e.shard.conn.Context().Err() != nil:
		c.idle.takeKey(k)
		c.streamGone(id)
		c.stats.lost++
		return
	case !se.Remote || se.ErrorCode == wire.StreamCodeDiscarded:
		c.idle.takeKey(k)
		wire.Discard(e.stream)
		c.stats.discarded++
		c.streamGone(id)
	default:
		now := time.Now()
		c.idle.markPeerClosed(k, now)
		// A caller may already wait for it: it came closed.
		c.serveCallersOf(id, k, now)
		if c.idle.peerClosedCount() > c.capacity() { // bounded: the oldest goes
			c.discardOldestPeerClosed()
		}
	}
	if c.rt.Client {
		if err := e.shard.trust.peerClosed(c.connectionHold(), time.Now()); err != nil {
			c.violation(e.shard, err)
			return
		}
		if e.shard.trust.closesDominate(c.connectionHold()) {
			return // replaced at the next tick, not at once: a server that closes every stream sets no pace
		}
	}
	c.replenish()
}

// discardOldestPeerClosed discards the peer-closed stream that has waited longest.
func (c *coordinator) discardOldestPeerClosed() {
	oldest, ok := c.idle.oldestPeerClosed()
	if !ok {
		return
	}
	if e, ok := c.idle.take(oldest); ok {
		wire.Discard(e.stream)
		c.stats.discarded++
		c.streamGone(oldest)
	}
}

// streamGone remembers a discarded ID and fails the callers waiting for it.
func (c *coordinator) streamGone(id string) {
	c.gone.add(id)
	c.waiters.failID(id, core.ErrStreamGone)
}

// goneIDs remembers the last limit discarded IDs. An ID can be discarded, issued again (by a
// restarted server: forget) and discarded again, so order may hold it more than once: set keeps
// the number of its latest entry, and only that entry's eviction forgets it.
type goneIDs struct {
	set   map[string]uint64 // ID -> the number of its latest entry in order
	order []goneEntry
	added uint64 // entries ever added
	limit int
}

type goneEntry struct {
	id string
	n  uint64
}

// newGoneIDs remembers up to 2 x maxCap discarded IDs, and at least minGoneMemory.
func newGoneIDs(maxCap int) goneIDs {
	return goneIDs{set: make(map[string]uint64), limit: max(minGoneMemory, 2*maxCap)}
}

func (g *goneIDs) has(id string) bool { _, ok := g.set[id]; return ok }

func (g *goneIDs) forget(id string) { delete(g.set, id) }

func (g *goneIDs) add(id string) {
	if g.has(id) {
		return
	}
	g.added++
	g.set[id] = g.added
	g.order = append(g.order, goneEntry{id: id, n: g.added})
	if len(g.order) > g.limit {
		if oldest := g.order[0]; g.set[oldest.id] == oldest.n {
			delete(g.set, oldest.id)
		}
		g.order = g.order[1:]
	}
}
