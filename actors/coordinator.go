package actors

import (
	"fmt"
	"runtime/debug"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool/internal/core"
	"github.com/quicpool/quicpool/internal/wire"
	"github.com/quicpool/quicpool/messages"
)

// serverTick is how often a server pool's coordinator sweeps expired waiters and held requests.
const serverTick = time.Second

// coordinator owns the pool's idle streams (the streams themselves, their IDs and order), the
// callers waiting for them, the load of every connection that is up, the pool's condition (why
// it cannot serve, if it cannot), and its counters. A client coordinator also owns capacity and
// interval tuning (refill.go); a server coordinator issues stream IDs (issuer.go).
type coordinator struct {
	rt     *runtime
	engine *actor.Engine
	self   *actor.PID

	started   bool
	stopped   bool
	timer     *time.Timer // the next tick
	peerTimer *time.Timer // the next checkPeers

	shards   shardSet            // connections up
	silent   int                 // how many of them are suspect (liveness, formerChanged)
	formers  int                 // server: how many of them are former (formerChanged)
	draining map[string]struct{} // client: the shards of connections out of the pool but open (drain.go), by actor ID
	idle     idleStreams
	gone     goneIDs
	waiters  waiters
	ready    []messages.WaitReady
	refill   refiller // client
	issuer   issuer   // server

	cond       condition
	listenAddr string
	userErrors int
	stats      counters
	slotsSeen  []bool // slots that have held a connection (Stats.Reconnects)
	othersTold bool   // client: the supervisor was told the other slots may dial (dialOthers)
	dialAtTick bool   // client: the first connection opened the capacity: dialOthers goes at the next tick
}

// shardLoad is the coordinator's record of one connection that is up.
type shardLoad struct {
	pid        *actor.PID
	slot       int
	conn       *quic.Conn
	opener     opener    // client: starts one open on an idle worker of the shard
	idle       int       // idle streams of this connection in the pool, peer-closed and control apart
	opening    int       // client: opens asked of the shard and not answered yet
	suspect    bool      // its streams are withheld: peerSilent, or former
	peerSilent bool      // the peer has been silent for longer than the path's normal silence
	former     bool      // server: its client's newer connection took its slot (supervisor.replaceSilent)
	heard      time.Time // when the peer was last heard
	upAt       time.Time
	trust      trust          // client: how the server has kept to the protocol on this connection
	queue      []wire.Key     // its usable idle IDs in arrival order; may hold IDs taken since
	held       []heldStream   // server: its handshaken streams waiting for room, oldest first
	inUse      []*quic.Stream // handed out; those whose write side closed are swept out (stats.go)
	inUseSwept int            // len(inUse) after the last sweep
	opened     uint64         // streams that completed their handshake
	failed     uint64         // stream opens or handshakes that failed
}

// condition is why the pool cannot serve. err is nil while it can; failFast makes calls fail at
// once with err instead of waiting (a client applies it only while no connection is up).
type condition struct {
	err      error
	failFast bool
}

type counters struct {
	opened, handedOut, discarded, lost, failed, refused, restarts, dropped, violations uint64
	reconnects                                                                         uint64
	refusals                                                                           messages.Refusals
	wait                                                                               waitHistogram
}

func newCoordinator(rt *runtime) actor.Producer {
	return func() actor.Receiver {
		c := &coordinator{
			rt:        rt,
			shards:    newShardSet(),
			draining:  map[string]struct{}{},
			idle:      newIdleStreams(),
			gone:      newGoneIDs(rt.MaxCap),
			refill:    refiller{capacity: rt.MinCap, interval: rt.MinIvl},
			issuer:    issuer{},
			slotsSeen: make([]bool, rt.SlotCount()),
		}
		if rt.Err != nil {
			c.cond = condition{err: rt.Err, failFast: true}
		}
		return c
	}
}

// Receive hands hollywood's messages to the coordinator's goroutine (run), which it starts with
// the actor and waits for as the actor stops.
func (c *coordinator) Receive(ctx *actor.Context) {
	m := ctx.Message()
	switch m.(type) {
	case actor.Initialized:
		return
	case actor.Started:
		c.engine, c.self = ctx.Engine(), ctx.PID()
		go c.run()
	case actor.Stopped:
		c.rt.Tell(m)
		<-c.rt.MailClosed
		return
	}
	c.rt.Tell(m)
}

// run is the coordinator's goroutine: every message told to the coordinator (core.Config.Tell)
// and every take the facade sends is handled here, one at a time, until the actor stops. The
// takes and the told messages come on two channels, with no order between them.
//
// hollywood v1.0.5 runs each wake of an actor (the messages it finds queued) on a new goroutine,
// whose stack starts at 2 KiB and must grow before a take fits; on the coordinator, the actor
// every take and every new stream goes through, that growth was 5% of a tunnel op's CPU. This
// goroutine lives as long as the actor and parks on its channels between messages; its stack
// grows again only after a collection has shrunk it.
func (c *coordinator) run() {
	defer close(c.rt.MailClosed)
	for {
		select {
		case m := <-c.rt.Mail:
			c.handle(m)
			if _, ok := m.(actor.Stopped); ok {
				return
			}
		case t := <-c.rt.Takes:
			c.handleTake(t)
		}
	}
}

// handleTake handles a take from the facade, recovering a panic as handle does.
func (c *coordinator) handleTake(t *core.Take) {
	defer c.recoverPanic(t)
	c.get(t.Get) // a copy: the facade reuses *t once it has its answer
}

// recoverPanic is handle's deferred recovery: the panic is logged with its stack, and the
// coordinator carries on with the next message.
func (c *coordinator) recoverPanic(m any) {
	v := recover()
	if v == nil {
		return
	}
	err := fmt.Errorf("%w in %s handling %T: %v", core.ErrPanic, c.self.GetID(), m, v)
	c.rt.Log.Error("actor panic recovered", "err", err, "stack", string(debug.Stack()))
}

// handle handles one message.
func (c *coordinator) handle(m any) {
	defer c.recoverPanic(m)
	switch m := m.(type) {
	case actor.Started:
		c.checkPeers()
	case actor.Stopped:
		c.stop()
	case core.Start:
		c.start()
	case messages.Get:
		c.embedderGet(m)
	case messages.State:
		c.state(m)
	case core.Cause:
		c.answer(deliver(m.Reply, c.errNow()))
	case messages.WaitReady:
		c.waitReady(m)
	case messages.Flush:
		c.flush(m.Reply)
	case messages.AddError:
		c.userErrors++
	case messages.ResetError:
		c.userErrors = 0
	case tick:
		c.tick()
	case replaceDue:
		c.replaceDue(m)
	case shardUp:
		c.shardUp(m)
	case shardDown:
		c.shardDown(m)
	case streamReady:
		c.streamReady(m)
	case openFailed:
		c.openFailed(m)
	case handshakeFailed:
		c.handshakeFailed(m)
	case dialFailed:
		c.dialFailed(m.err)
	case liveness:
		c.liveness(m)
	case formerConn:
		c.formerChanged(m)
	case handshaken:
		c.handshaken(m)
	case checkPeers:
		c.checkPeers()
	case listening:
		c.listening(m.addr)
	case listenFailed:
		c.setCondition(condition{err: core.Also(core.ErrUnavailable, m.err), failFast: true})
	case connRefused:
		c.countRefusal(m.reason)
	}
}

func (c *coordinator) start() {
	if c.started {
		return
	}
	c.started = true
	c.tick()
}

// embedderGet is get for a Get an embedding actor sent: one whose reply channel is closed is
// refused at once, rather than waiting for a stream it could never take. (The facade's channels
// are never closed.)
func (c *coordinator) embedderGet(g messages.Get) {
	if isClosed(g.Reply) {
		c.stats.dropped++
		return
	}
	c.get(g)
}

// get serves a request at once if it can, fails it at once if it must, and files it otherwise.
func (c *coordinator) get(g messages.Get) {
	if cap(g.Reply) != 1 {
		c.stats.dropped++ // it could never take its stream safely: refused
		return
	}
	if g.ID != "" {
		k, err := wire.KeyOf(g.ID)
		if err != nil {
			c.answerGet(g, err)
			return
		}
		if e, ok := c.lookUp(g.ID, k); ok && !e.shard.suspect {
			c.handOutByID(g.ID, k, waiter{Get: g})
			return
		} else if ok && !g.NoWait { // its connection is silent: wait until it answers or dies
			c.waiters.add(g, time.Now())
			return
		}
		if c.gone.has(g.ID) {
			c.answerGet(g, core.ErrStreamGone)
			return
		}
	} else if id, e, ok := c.takeAny(); ok {
		c.handOut(id, e, waiter{Get: g})
		return
	}
	switch {
	case c.failFast() != nil:
		c.answerGet(g, c.failFast())
	case g.NoWait:
		c.answerGet(g, c.timeout())
	default:
		c.waiters.add(g, time.Now())
	}
}

// takeAny takes the usable idle stream a caller that takes any gets (idleStreams.oldest),
// passing over those the peer stopped reading since the last checkPeers: they are dealt with
// (peerStopped) and stop being usable.
func (c *coordinator) takeAny() (string, idleStream, bool) {
	for {
		id, e, ok := c.idle.oldest()
		if !ok || !peerGone(e.stream) {
			return id, e, ok
		}
		c.idle.add(id, e)
		c.idle.repeatTurn() // a stream its peer stopped reading does not cost the peer its turn
		c.peerStopped(id)
	}
}

// lookUp returns the stream filed under k (id's Key) for a caller that asks for it by ID. A peer
// that stopped reading it since the last checkPeers is dealt with first (peerStopped): a
// discarded stream goes, a closed one stays reachable by ID.
func (c *coordinator) lookUp(id string, k wire.Key) (idleStream, bool) {
	if e, ok := c.idle.byID[k]; ok && !c.idle.peerClosed(k) && peerGone(e.stream) {
		c.peerStopped(id)
	}
	e, ok := c.idle.byID[k]
	return e, ok
}

// handOutByID takes the stream filed under k (id's Key) out of the store and gives it to g, and
// reports whether g took it. If g's caller has gone, the stream goes back as it was: a
// peer-closed one keeps its time.
func (c *coordinator) handOutByID(id string, k wire.Key, g waiter) bool {
	closedAt := c.idle.closedSince(k)
	e, _ := c.idle.takeKey(k)
	if !c.deliverStream(g, messages.Stream{ID: id, Stream: e.stream, Conn: e.shard.conn}, e.shard) {
		c.idle.restore(k, e, closedAt)
		return false
	}
	return true
}

// handOut gives the idle stream id, already taken out of the store, to g. If g's caller has
// gone, the stream goes back to the store.
func (c *coordinator) handOut(id string, e idleStream, g waiter) {
	if !c.deliverStream(g, messages.Stream{ID: id, Stream: e.stream, Conn: e.shard.conn}, e.shard) {
		c.idle.add(id, e)
	}
}

// deliverStream hands s to g's caller and replenishes the pool, or reports that the caller has
// gone. A reply channel that could not take the stream although nobody abandoned it (a closed
// channel) is counted as dropped. A g that was never filed waited for nothing.
func (c *coordinator) deliverStream(g waiter, s messages.Stream, st *shardLoad) bool {
	// The last usable stream going (not the control stream, nor one the peer closed) is
	// exhaustion; judged before the caller may close it.
	last := c.rt.Client && c.idle.usable == 0 && s.ID != wire.ControlID && !peerGone(s.Stream)
	if sendStream(g.Reply, s) {
		st.trust.taken++
		st.trackInUse(s.Stream)
		c.stats.handedOut++
		var waited time.Duration
		if !g.since.IsZero() {
			waited = time.Since(g.since)
		}
		c.stats.wait.observe(waited)
		if last {
			c.exhausted()
		}
		c.replaceTaken()
		return true
	}
	if len(g.Reply) == 0 {
		c.stats.dropped++
	}
	return false
}

// streamReady (client) files a stream the server gave an ID, once it checked that the server
// keeps to the protocol.
func (c *coordinator) streamReady(m streamReady) {
	st := c.shards.of(m.shard)
	if st == nil { // its connection went down after the handshake: the stream dies with it
		wire.Discard(m.stream)
		c.stats.opened++
		c.stats.discarded++
		return
	}
	st.opening = max(st.opening-1, 0)
	c.refill.created++
	old, dup := c.idle.get(m.id)
	if err := st.trust.handshaken(m.id, dup && old.shard == st); err != nil {
		wire.Discard(m.stream)
		c.stats.opened++
		st.opened++
		c.stats.discarded++
		c.violation(st, err)
		return
	}
	if dup { // the same ID from another connection (a restarted server): the older one goes
		c.idle.take(m.id)
		wire.Discard(old.stream)
		c.stats.discarded++
	}
	c.fileReady(st, m.id, m.stream)
	c.batchCheck()
}

// fileReady files a stream that completed its handshake, or hands it straight to a caller
// waiting for it.
func (c *coordinator) fileReady(st *shardLoad, id string, stream *quic.Stream) {
	c.stats.opened++
	st.opened++
	c.gone.forget(id)
	switch { // whether the stream is filed or goes straight to a waiting caller
	case !c.rt.Client: // a server dials nothing
	case c.stats.opened >= uint64(c.connectionHold()):
		c.letOthersDial() // the first connection holds all it may: the rest needs the others
	case c.stats.opened >= uint64(c.refill.capacity):
		c.dialAtTick = true // the pool is filled: the others dial at the next tick (tick)
	}
	if id == wire.ControlID {
		// It was opened as one of the capacity's streams but takes no slot: the stream it did not
		// fill is asked for at once, whether it is filed or goes straight to a waiting caller
		// (whose hand-out, like any, may wait for a batch).
		defer c.replenish()
	}
	now := time.Now()
	gone := peerGone(stream)   // the peer closed or discarded it before it came: dealt with at once
	for !st.suspect && !gone { // a silent connection's streams wait with the others (liveness)
		g, ok := c.waiters.next(id, now)
		if !ok {
			break
		}
		if c.deliverStream(g, messages.Stream{ID: id, Stream: stream, Conn: st.conn}, st) {
			return
		}
	}
	c.idle.add(id, idleStream{stream: stream, shard: st})
	if gone {
		c.peerStopped(id)
	}
	c.checkReady()
}

// letOthersDial tells a client's supervisor, once, that the other slots may dial: the first
// connection has opened as much as one connection holds, or an open failed, or the tick after it
// opened the pool's capacity came (taken streams count: callers may take them as fast as they
// come). Until then the first connection fills the pool alone (supervisor.startOthers), and a
// pool just filled serves its first callers, and its server files its last streams, without
// sharing the CPU with a TLS handshake.
func (c *coordinator) letOthersDial() {
	if c.rt.Client && !c.othersTold {
		c.othersTold = true
		c.engine.Send(c.rt.supervisor, dialOthers{})
	}
}

// openFailed counts m.n failed opens of a client shard, and judges whether its server still
// keeps to the protocol (trust.openFailed).
func (c *coordinator) openFailed(m openFailed) {
	st := c.shards.of(m.shard)
	for range m.n {
		c.noteFailure(st)
	}
	if st == nil {
		return
	}
	st.opening = max(st.opening-m.n, 0)
	c.letOthersDial()
	if err := st.trust.openFailed(m.err, st.idle, time.Now(), 3*c.rt.HandshakeTimeout); err != nil {
		c.violation(st, err)
	}
}

// violation closes a client connection whose server broke the protocol; the supervisor
// reconnects with backoff. The connection is forgotten at once, as at its shardDown: none of its
// streams is handed out, and no stream is asked of it, while it closes.
func (c *coordinator) violation(st *shardLoad, err error) {
	if st.trust.violated {
		return
	}
	st.trust.violated = true
	c.stats.violations++
	c.rt.Log.Error("closing the connection: the server broke the protocol", "slot", st.slot, "err", err)
	c.engine.Send(st.pid, violation{err: err})
	if c.shards.remove(st.pid) != nil {
		c.forgetConnection(st, false)
		c.replenish() // the others make up for its streams
	}
}

// noteFailure counts a failed stream open or handshake, on st's connection if it is still up.
func (c *coordinator) noteFailure(st *shardLoad) {
	c.stats.failed++
	if st != nil {
		st.failed++
	}
}

// shardUp records a connection that came up; the pool serves again if it could not.
func (c *coordinator) shardUp(m shardUp) {
	now := time.Now()
	st := &shardLoad{pid: m.shard, slot: m.slot, conn: m.conn, opener: m.opener, heard: now, upAt: now}
	c.shards.add(st)
	c.idle.addShard(st)
	c.noteUp(m.slot)
	c.reclaim() // the others' shares shrink
	if c.rt.Client {
		c.setCondition(condition{})
	}
	c.replenish()
	c.checkReady()
}

// shardDown forgets a connection and its idle streams (its connection is closing: they are not
// reset one by one), fails the callers waiting for them by ID, and, on a client with no
// connection left, records why.
func (c *coordinator) shardDown(m shardDown) {
	switch st := c.shards.remove(m.shard); {
	case st != nil && m.drain:
		c.drainConnection(st)
	case st != nil:
		c.forgetConnection(st, false)
	default: // forgotten already: after a violation, or the report of a drained shard that stopped
		delete(c.draining, m.shard.ID)
	}
	if c.rt.Client && m.err != nil {
		c.stats.restarts++
		if c.shards.count() == 0 {
			c.setCondition(condition{err: fmt.Errorf("%w: %w", core.ErrUnavailable, m.err), failFast: m.failFast})
		}
	}
	c.replenish()
}

// forgetConnection forgets st, a connection no longer among the shards: its idle streams go, the
// callers waiting for them by ID are failed, and its held streams go. The idle streams of a
// connection that is closing go without a reset (its close ends them) and count as lost; those of
// one that stays open (draining) are reset both ways, so that the peer discards its side at once,
// and count as discarded.
func (c *coordinator) forgetConnection(st *shardLoad, draining bool) {
	if st.suspect {
		c.silent--
	}
	if st.former {
		c.formers--
	}
	c.idle.removeShard(st)
	for _, id := range c.idle.dropShard(st, draining) {
		c.streamGone(id)
		if draining {
			c.stats.discarded++
		} else {
			c.stats.lost++
		}
	}
	dropHeld(st)
}

// answer counts a reply that could not be delivered.
func (c *coordinator) answer(delivered bool) {
	if !delivered {
		c.stats.dropped++
	}
}

// answerGet answers g with err, without a stream. As in deliverStream, a reply slot that is
// already full belongs to a caller who gave up (messages.Abandon) before its request was
// handled: nothing was lost, and nothing is counted.
func (c *coordinator) answerGet(g messages.Get, err error) {
	if !deliver(g.Reply, messages.Stream{ID: g.ID, Err: err}) && len(g.Reply) == 0 {
		c.stats.dropped++
	}
}

func (c *coordinator) waitReady(m messages.WaitReady) {
	switch {
	case cap(m.Reply) == 0 || isClosed(m.Reply):
		c.stats.dropped++ // no answer could ever reach its caller: refused
	case m.N < 0 || m.N > c.rt.MaxCap:
		c.answer(deliver(m.Reply, error(fmt.Errorf("%w: WaitReady for %d idle streams: the pool holds 0..%d",
			core.ErrInvalidArgument, m.N, c.rt.MaxCap))))
	default:
		raised := c.rt.Client && m.N > c.refill.capacity
		if raised {
			c.refill.capacity = m.N // demand, like a hand-out that empties the pool; it decays as usual
		}
		c.ready = append(c.ready, m)
		c.checkReady()
		if raised || len(c.ready) > 0 {
			c.replenish() // asks for what is missing at once, ending a wait for a batch
		}
	}
}

// checkReady answers the WaitReady requests that are satisfied or failed, and drops the
// cancelled ones.
func (c *coordinator) checkReady() {
	if len(c.ready) == 0 {
		return
	}
	failed, running := c.failFast(), c.running()
	kept := c.ready[:0]
	for _, w := range c.ready {
		switch {
		case failed != nil:
			c.answer(deliver(w.Reply, failed))
		case running && c.idle.usable >= w.N:
			c.answer(deliver(w.Reply, error(nil)))
		case w.Done != nil && core.IsClosed(w.Done):
		default:
			kept = append(kept, w)
		}
	}
	clear(c.ready[len(kept):])
	c.ready = kept
}

// running reports whether the pool serves: a client has a connection up, a server listens.
func (c *coordinator) running() bool {
	if c.rt.Client {
		return c.started && c.shards.count() > 0
	}
	return c.started && c.listenAddr != ""
}

// flush discards every idle stream, resetting each both ways so that the peer's pool discards its
// side too, and refills.
func (c *coordinator) flush(reply chan struct{}) {
	for _, id := range c.idle.drain() {
		c.streamGone(id)
		c.stats.discarded++
	}
	c.replenish()
	if reply != nil {
		c.answer(deliver(reply, struct{}{}))
	}
}

// tick runs one cycle: sweep what expired, tune (client), refill, and schedule the next tick.
func (c *coordinator) tick() {
	defer c.scheduleTick() // deferred: a panic below must not end the ticks
	now := time.Now()
	c.waiters.sweep(now)
	c.reclaim()
	c.expireHeld(now)
	c.grantHeld() // also drops held streams whose client gave up
	c.checkReady()
	if c.rt.Client {
		c.tune()
		c.replenish()
		if c.dialAtTick {
			c.letOthersDial()
		}
	}
}

// scheduleTick arms the next tick: after the tuned interval on a client, serverTick on a server.
func (c *coordinator) scheduleTick() {
	if c.stopped {
		return
	}
	next := serverTick
	if c.rt.Client {
		next = c.refill.interval
	}
	c.timer = time.AfterFunc(next, func() { c.rt.Tell(tick{}) })
}

// stop ends the pool's service: waiting calls fail with ErrClosed, idle streams are forgotten
// (their connections are being closed), and the last Stats are left for the facade.
func (c *coordinator) stop() {
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.peerTimer != nil {
		c.peerTimer.Stop()
	}
	c.refill.endBatchWait()
	c.started, c.stopped = false, true
	c.stats.lost += uint64(len(c.idle.byID))
	c.idle.forget()
	c.waiters.failAll(core.ErrClosed)
	for _, w := range c.ready {
		deliver(w.Reply, core.ErrClosed)
	}
	c.ready = nil
	c.shards.clear()
	clear(c.draining) // the supervisor closes them
	if c.rt.Stopped == nil || core.IsClosed(c.rt.Stopped) {
		return
	}
	final := c.snapshot()
	final.Closed, final.Err, final.FailFast = true, core.ErrClosed, true
	*c.rt.Final = final
	close(c.rt.Stopped)
}
