package actors

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quicpool/quicpool/messages"
)

// Tuning constants of the refill cycle (DESIGN.md section 3).
const (
	intervalStep    = 100 * time.Millisecond
	lowRatio        = 0.2
	highRatio       = 0.8
	serverTick      = time.Second // a server pool only ticks to drop expired waiters
	goneMemory      = 4096        // how many discarded IDs are remembered for ErrStreamGone
	waiterPruneStep = 1024        // waiters are swept for expired ones every this many new ones
	// peerClosedGrace is how long a stream the peer closed before this side took it stays
	// reachable by ID (see messages.StreamClosedByPeer).
	peerClosedGrace = 10 * time.Second
)

// CoordinatorConfig configures a coordinator.
type CoordinatorConfig struct {
	Runtime
	// Client selects the client behaviour: refill by opening streams, tune capacity and
	// interval. A server coordinator issues IDs and caps idle streams at MaxCap instead.
	Client         bool
	MinCap, MaxCap int
	MinIvl, MaxIvl time.Duration
	// Shards is the number of shard slots; PerShard the most streams one shard holds or opens.
	Shards, PerShard int
	// Err, when set, fails every Get at once: the pool's configuration is invalid.
	Err error
	// Stopped, if set, is closed when the coordinator stops, however it was stopped.
	Stopped chan struct{}
	// Admission bounds the Get requests sent but not yet handled: the facade puts a token in
	// before sending an admitted Get, the coordinator takes one out when it handles it.
	Admission chan struct{}
}

// NewCoordinator returns the producer of a pool's coordinator. The coordinator owns the idle
// stream IDs and where each one lives, the waiting callers, and (client) the refill cycle with
// its capacity and interval tuning. Streams themselves stay in their shards.
func NewCoordinator(cfg CoordinatorConfig) actor.Producer {
	return func() actor.Receiver {
		return &coordinator{
			cfg:       cfg,
			capacity:  cfg.MinCap,
			interval:  cfg.MinIvl,
			idle:      make(map[string]*shardState),
			lingering: make(map[string]lingering),
			shards:    make(map[string]*shardState),
			idWaiters: make(map[string][]messages.Get),
			reserved:  make(map[string]string),
			gone:      make(map[string]bool),
			fatal:     cfg.Err,
		}
	}
}

// Spawner spawns an actor: actor.Engine.Spawn for a top-level actor, actor.Context.SpawnChild
// for a child of the calling actor.
type Spawner func(p actor.Producer, name string, opts ...actor.OptFunc) *actor.PID

// SpawnCoordinator spawns a coordinator with the pool's standard options.
func SpawnCoordinator(spawn Spawner, cfg CoordinatorConfig, id string) *actor.PID {
	return spawn(NewCoordinator(cfg), "quicpool", spawnOpts(cfg.Log, id)...)
}

// lingering is a stream closed by the peer before it was taken, kept reachable by ID until
// its grace period ends.
type lingering struct {
	shard *shardState
	since time.Time
}

// shardState is the coordinator's view of one live shard.
type shardState struct {
	pid      *actor.PID
	slot     int
	idle     int // idle streams stored in the shard, the control stream apart
	opening  int // opens sent to the shard and not yet answered (client)
	reserved int // IDs issued to the shard's streams that are finishing their handshake (server)
}

type coordinator struct {
	cfg    CoordinatorConfig
	engine *actor.Engine
	self   *actor.PID

	capacity int
	interval time.Duration
	created  int // streams that became idle since the last tick
	timer    *time.Timer
	started  bool

	idle      map[string]*shardState // idle stream ID -> the shard holding it
	lingering map[string]lingering   // streams the peer closed before they were taken
	queue     []string               // idle IDs in arrival order, for Get{ID: ""}; may hold stale IDs
	shards    map[string]*shardState // live shards by PID ID
	ready     []messages.WaitReady   // callers of WaitReady
	anyWaiter []messages.Get
	idWaiters map[string][]messages.Get
	waiters   int // number of entries in anyWaiter and idWaiters
	sinceScan int // waiters added since the last sweep

	reserved   map[string]string    // server: IDs issued to streams finishing their handshake -> shard
	held       []messages.ReserveID // server: handshaken streams waiting for room in the pool
	issuedZero bool

	gone      map[string]bool // recently discarded IDs, answered with ErrStreamGone
	goneOrder []string

	fatal      error
	lastErr    error
	lastErrAt  time.Time
	listenAddr string
	userErrors int
	stats      struct{ opened, handedOut, discarded, failed, restarts, refused uint64 }
}

func (c *coordinator) Receive(ctx *actor.Context) {
	switch m := ctx.Message().(type) {
	case actor.Started:
		c.engine, c.self = ctx.Engine(), ctx.PID()
	case actor.Stopped:
		c.stop()
		if c.cfg.Stopped != nil && !isClosed(c.cfg.Stopped) {
			close(c.cfg.Stopped)
		}
	case messages.Start:
		if !c.started {
			c.started = true
			c.tick()
		}
	case messages.Tick:
		c.tick()
	case messages.Get:
		if m.Admitted {
			select {
			case <-c.cfg.Admission:
			default: // an embedder set Admitted without a token
			}
		}
		c.get(m)
	case messages.State:
		m.Reply <- c.snapshot()
	case messages.WaitReady:
		c.ready = append(c.ready, m)
		c.checkReady()
	case messages.Flush:
		c.flush()
		close(m.Reply)
	case messages.AddError:
		c.userErrors++
	case messages.ResetError:
		c.userErrors = 0
	case messages.ShardUp:
		c.shards[m.Shard.ID] = &shardState{pid: m.Shard, slot: m.Slot}
		c.refill()
		c.checkReady()
	case messages.ShardDown:
		c.shardDown(m)
	case messages.StreamIdle:
		c.streamIdle(m)
	case messages.StreamsPurged:
		c.purged(m.Shard, m.IDs)
	case messages.StreamClosedByPeer:
		if st, ok := c.idle[m.ID]; ok && st.pid.ID == m.Shard.ID {
			c.forget(m.ID)
			c.lingering[m.ID] = lingering{shard: st, since: time.Now()}
			c.refill()
		}
	case messages.OpenFailed:
		if st := c.shards[m.Shard.ID]; st != nil {
			st.opening = max(st.opening-m.N, 0)
		}
		if !errors.Is(m.Err, errShardDown) { // opens never attempted: the shard's failure says why
			c.stats.failed += uint64(m.N)
			c.noteErr(m.Err)
		}
	case messages.StreamDiscarded:
		c.stats.failed++
		c.noteErr(m.Err)
	case messages.TakeMissed:
		c.get(m.Get)
	case messages.ReserveID:
		c.admit(m)
	case messages.ReleaseID:
		c.release(m.ID)
	case messages.PoolError:
		c.setFatal(m.Err)
		c.checkReady()
	case messages.Listening:
		c.listenAddr = m.Addr
		c.setFatal(nil)
		c.checkReady()
	case messages.Restarted:
		c.stats.restarts++
	case messages.Refused:
		c.stats.refused++
	}
}

// get serves a request at once if it can, fails it at once if it must, and queues it otherwise.
func (c *coordinator) get(g messages.Get) {
	if g.ID != "" {
		if st, ok := c.idle[g.ID]; ok {
			c.forget(g.ID)
			c.take(g.ID, st, g)
			return
		}
		if l, ok := c.lingering[g.ID]; ok {
			delete(c.lingering, g.ID)
			c.stats.handedOut++
			c.engine.Send(l.shard.pid, messages.Take{ID: g.ID, Get: g})
			return
		}
		if c.gone[g.ID] {
			g.Deliver(messages.Stream{ID: g.ID, Err: messages.ErrStreamGone})
			return
		}
	} else if id, st, ok := c.popAny(); ok {
		c.take(id, st, g)
		return
	}
	if err := c.failFast(); err != nil {
		g.Deliver(messages.Stream{ID: g.ID, Err: err})
		return
	}
	if g.NoWait {
		g.Deliver(messages.Stream{ID: g.ID, Err: messages.ErrTimeout})
		return
	}
	if g.ID != "" {
		c.idWaiters[g.ID] = append(c.idWaiters[g.ID], g)
	} else {
		c.anyWaiter = append(c.anyWaiter, g)
	}
	c.waiters++
	if c.sinceScan++; c.sinceScan >= waiterPruneStep {
		c.pruneWaiters(time.Now())
	}
}

// take hands the idle stream id, already forgotten, to g through its shard, and starts its
// replacement at once.
func (c *coordinator) take(id string, st *shardState, g messages.Get) {
	c.stats.handedOut++
	c.engine.Send(st.pid, messages.Take{ID: id, Get: g})
	c.refill()
}

// streamIdle files a stream that became idle, or hands it straight to a waiter.
func (c *coordinator) streamIdle(m messages.StreamIdle) {
	st := c.shards[m.Shard.ID]
	if st == nil {
		return // the shard went down after sending this; it has discarded the stream
	}
	c.unreserve(m.ID) // the stream turns idle: no room frees up
	if m.Returned {
		c.stats.handedOut--
		if m.PeerClosed { // back from a caller who gave up: reachable by ID only, as before
			if g, ok := c.nextIDWaiter(m.ID); ok {
				c.take(m.ID, st, g)
			} else {
				c.lingering[m.ID] = lingering{shard: st, since: time.Now()}
			}
			return
		}
	} else {
		st.opening = max(st.opening-1, 0)
		c.created++
		c.stats.opened++
	}
	if _, dup := c.idle[m.ID]; dup {
		// Two live streams with one ID (a peer that reuses IDs): keep the first.
		c.engine.Send(st.pid, messages.Discard{IDs: []string{m.ID}})
		return
	}
	delete(c.gone, m.ID)
	if g, ok := c.nextWaiter(m.ID); ok {
		c.take(m.ID, st, g)
		return
	}
	c.idle[m.ID] = st
	if m.ID != ControlID {
		st.idle++
		c.queue = append(c.queue, m.ID)
	} else {
		c.refill() // it was opened as one of the capacity's streams but takes no slot
	}
	c.checkReady()
}

// checkReady answers the WaitReady requests that are satisfied, failed, or cancelled.
func (c *coordinator) checkReady() {
	if len(c.ready) == 0 {
		return
	}
	running := c.started && (len(c.shards) > 0 || (!c.cfg.Client && c.listenAddr != ""))
	kept := c.ready[:0]
	for _, w := range c.ready {
		switch {
		case c.failFast() != nil:
			w.Reply <- c.failFast()
		case running && c.usable() >= w.N:
			w.Reply <- nil
		case w.Done != nil && isClosed(w.Done):
			// the caller has gone
		default:
			kept = append(kept, w)
		}
	}
	clear(c.ready[len(kept):])
	c.ready = kept
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// nextWaiter pops the request that should receive stream id: one waiting for that ID first, then
// one waiting for any stream (never for the control stream). Abandoned and expired requests are
// dropped on the way.
func (c *coordinator) nextWaiter(id string) (messages.Get, bool) {
	if g, ok := c.nextIDWaiter(id); ok {
		return g, true
	}
	if id == ControlID {
		return messages.Get{}, false
	}
	now := time.Now()
	for len(c.anyWaiter) > 0 {
		g := c.anyWaiter[0]
		c.anyWaiter[0] = messages.Get{}
		c.anyWaiter = c.anyWaiter[1:]
		c.waiters--
		if !g.Gone(now) {
			return g, true
		}
	}
	return messages.Get{}, false
}

// nextIDWaiter pops the oldest live request waiting for stream id.
func (c *coordinator) nextIDWaiter(id string) (messages.Get, bool) {
	now := time.Now()
	q := c.idWaiters[id]
	for len(q) > 0 {
		g := q[0]
		q = q[1:]
		c.waiters--
		if !g.Gone(now) {
			c.setIDWaiters(id, q)
			return g, true
		}
	}
	delete(c.idWaiters, id)
	return messages.Get{}, false
}

func (c *coordinator) setIDWaiters(id string, q []messages.Get) {
	if len(q) == 0 {
		delete(c.idWaiters, id)
	} else {
		c.idWaiters[id] = q
	}
}

// popAny returns the oldest idle stream other than the control stream.
func (c *coordinator) popAny() (string, *shardState, bool) {
	for len(c.queue) > 0 {
		id := c.queue[0]
		c.queue = c.queue[1:]
		if st, ok := c.idle[id]; ok {
			c.forget(id)
			return id, st, true
		}
	}
	return "", nil, false
}

// usable is the number of idle streams that count towards capacity: all but the control stream,
// which waits apart for the caller that asks for it by ID (a pool that never uses it must not
// lose a slot to it).
func (c *coordinator) usable() int {
	if _, ok := c.idle[ControlID]; ok {
		return len(c.idle) - 1
	}
	return len(c.idle)
}

// forget removes id from the idle set. Its entry in queue, if any, goes stale and is skipped.
func (c *coordinator) forget(id string) {
	if st, ok := c.idle[id]; ok {
		delete(c.idle, id)
		if id != ControlID {
			st.idle--
		}
	}
	if len(c.queue) > 64 && len(c.queue) > 2*len(c.idle) {
		c.compactQueue()
	}
	c.grantHeld()
}

func (c *coordinator) compactQueue() {
	fresh := make([]string, 0, len(c.idle))
	seen := make(map[string]bool, len(c.idle))
	for _, id := range c.queue {
		if _, ok := c.idle[id]; ok && !seen[id] {
			seen[id] = true
			fresh = append(fresh, id)
		}
	}
	c.queue = fresh
}

// markGone remembers a discarded ID so that a later OutgoingGet for it fails fast.
func (c *coordinator) markGone(id string) {
	if c.gone[id] {
		return
	}
	c.gone[id] = true
	c.goneOrder = append(c.goneOrder, id)
	if len(c.goneOrder) > goneMemory {
		delete(c.gone, c.goneOrder[0])
		c.goneOrder = c.goneOrder[1:]
	}
}

// purged drops idle streams that a shard has closed.
func (c *coordinator) purged(shard *actor.PID, ids []string) {
	for _, id := range ids {
		if st, ok := c.idle[id]; ok {
			if st.pid.ID != shard.ID {
				continue // a duplicate of a stream that lives on in another shard
			}
			c.forget(id)
		}
		if l, ok := c.lingering[id]; ok && l.shard.pid.ID == shard.ID {
			delete(c.lingering, id)
		}
		c.markGone(id)
		c.failIDWaiters(id, messages.ErrStreamGone)
	}
	c.stats.discarded += uint64(len(ids))
	c.refill()
}

func (c *coordinator) failIDWaiters(id string, err error) {
	for _, g := range c.idWaiters[id] {
		g.Deliver(messages.Stream{ID: id, Err: err})
		c.waiters--
	}
	delete(c.idWaiters, id)
}

// shardDown forgets a shard that failed or stopped, with its idle streams and reservations, and
// answers Retired: every Take sent to the shard before this is already in its inbox, so it is
// answered; nothing is sent to the shard after this.
func (c *coordinator) shardDown(m messages.ShardDown) {
	if st := c.shards[m.Shard.ID]; st != nil {
		delete(c.shards, m.Shard.ID)
		c.purged(m.Shard, m.IDs)
	}
	for id, shard := range c.reserved {
		if shard == m.Shard.ID {
			c.unreserve(id)
			if id == ControlID {
				c.issuedZero = false
			}
		}
	}
	c.noteErr(m.Err)
	c.grantHeld() // the share of the other connections grows
	c.engine.Send(m.Shard, messages.Retired{})
}

// flush forgets every idle stream and tells the shards to close them.
func (c *coordinator) flush() {
	for id := range c.idle {
		c.markGone(id)
	}
	for id := range c.lingering {
		c.markGone(id)
	}
	clear(c.idle)
	clear(c.lingering)
	c.queue = nil
	for _, st := range c.shards {
		st.idle = 0
		c.engine.Send(st.pid, messages.Discard{})
	}
	c.grantHeld()
	c.refill()
}

// refill (client) asks the shards to open the streams the pool lacks. Each live shard first gets
// up to its fair share of the capacity (capacity / shard slots), so that every connection carries
// traffic; on a tick, when some slots are down, the live shards also take up the rest, up to
// PerShard each.
func (c *coordinator) refill() { c.refillUpTo(c.share()) }

func (c *coordinator) share() int {
	return min((c.capacity+c.cfg.Shards-1)/c.cfg.Shards, c.cfg.PerShard)
}

func (c *coordinator) refillUpTo(limit int) {
	if !c.cfg.Client || !c.started || len(c.shards) == 0 {
		return
	}
	need := c.capacity - c.usable()
	for _, st := range c.shards {
		need -= st.opening
	}
	if need == 1 { // the replacement of one taken stream: the common case, without allocating
		if best := c.leastLoaded(limit); best != nil {
			best.opening++
			c.engine.Send(best.pid, messages.Open{N: 1})
		}
		return
	}
	// Hand the streams out one at a time to the least loaded shard, then send one Open each.
	before := make(map[*shardState]int, len(c.shards))
	for ; need > 0; need-- {
		best := c.leastLoaded(limit)
		if best == nil {
			break // every live shard holds its limit
		}
		if _, ok := before[best]; !ok {
			before[best] = best.opening
		}
		best.opening++
	}
	for st, n := range before {
		c.engine.Send(st.pid, messages.Open{N: st.opening - n})
	}
}

// leastLoaded returns the live shard with the fewest idle and opening streams, if it has fewer
// than limit.
func (c *coordinator) leastLoaded(limit int) *shardState {
	var best *shardState
	for _, st := range c.shards {
		load := st.idle + st.opening
		if load < limit && (best == nil || load < best.idle+best.opening) {
			best = st
		}
	}
	return best
}

// tick runs one refill cycle: tune the interval and the capacity (client), drop expired waiters,
// and schedule the next tick.
func (c *coordinator) tick() {
	now := time.Now()
	c.pruneWaiters(now)
	c.sweepLingering(now)
	c.grantHeld() // also drops held requests whose stream gave up
	c.checkReady()
	next := serverTick
	if c.cfg.Client {
		c.adjustInterval()
		c.adjustCapacity()
		c.refill()
		if len(c.shards) < c.cfg.Shards {
			c.refillUpTo(c.cfg.PerShard)
		}
		next = c.interval
	}
	engine, self := c.engine, c.self
	c.timer = time.AfterFunc(next, func() { engine.Send(self, messages.Tick{}) })
}

// sweepLingering asks the shards to discard the streams whose grace period is over.
func (c *coordinator) sweepLingering(now time.Time) {
	expired := make(map[*shardState][]string)
	for id, l := range c.lingering {
		if now.Sub(l.since) >= peerClosedGrace {
			expired[l.shard] = append(expired[l.shard], id)
			delete(c.lingering, id)
		}
	}
	for st, ids := range expired {
		c.engine.Send(st.pid, messages.Discard{IDs: ids})
	}
}

// adjustInterval: fewer than 20% of capacity idle -> refill faster; more than 80% -> slower.
func (c *coordinator) adjustInterval() {
	idle := float64(c.usable())
	capacity := float64(c.capacity)
	switch {
	case idle < capacity*lowRatio && c.interval > c.cfg.MinIvl:
		c.interval = max(c.interval-intervalStep, c.cfg.MinIvl)
	case idle > capacity*highRatio && c.interval < c.cfg.MaxIvl:
		c.interval = min(c.interval+intervalStep, c.cfg.MaxIvl)
	}
}

// adjustCapacity: streams created in the last cycle below 20% of capacity -> one less; above 80%
// -> one more.
func (c *coordinator) adjustCapacity() {
	ratio := float64(c.created) / float64(c.capacity)
	c.created = 0
	switch {
	case ratio < lowRatio && c.capacity > c.cfg.MinCap:
		c.capacity--
	case ratio > highRatio && c.capacity < c.cfg.MaxCap:
		c.capacity++
	}
}

// pruneWaiters drops requests whose callers have gone.
func (c *coordinator) pruneWaiters(now time.Time) {
	c.sinceScan = 0
	live := c.anyWaiter[:0]
	for _, g := range c.anyWaiter {
		if !g.Gone(now) {
			live = append(live, g)
		}
	}
	clear(c.anyWaiter[len(live):])
	c.anyWaiter = live
	n := len(live)
	for id, q := range c.idWaiters {
		kept := q[:0]
		for _, g := range q {
			if !g.Gone(now) {
				kept = append(kept, g)
			}
		}
		c.setIDWaiters(id, kept)
		n += len(kept)
	}
	c.waiters = n
}

// admit (server) answers a handshaken stream's request for an ID at once if the pool has room
// for it, and holds it until room frees up otherwise (see grantHeld). Every held request was
// checked when room last freed, so one that fits now may go ahead of them.
func (c *coordinator) admit(m messages.ReserveID) {
	if c.fits(m.Shard) {
		c.grant(m)
		return
	}
	c.held = append(c.held, m)
}

// fits reports whether shard may have one more stream: the pool holds fewer than MaxCap idle or
// reserved streams, and, with several client connections up, none may hold more than
// MaxCap / connections, so one connection cannot crowd out the others.
func (c *coordinator) fits(shard *actor.PID) bool {
	st := c.shards[shard.ID]
	if st == nil || c.usable()+len(c.reserved) >= c.cfg.MaxCap {
		return false
	}
	share := (c.cfg.MaxCap + len(c.shards) - 1) / len(c.shards)
	return st.idle+st.reserved < share
}

// grantHeld gives IDs to held streams, oldest first, as far as there is room; a stream whose
// connection is over its share waits while others go ahead. Requests whose stream gave up or
// whose shard is gone are dropped.
func (c *coordinator) grantHeld() {
	if len(c.held) == 0 {
		return
	}
	kept := c.held[:0]
	for _, m := range c.held {
		switch {
		case len(m.Reply) > 0 || c.shards[m.Shard.ID] == nil:
			m.Deliver("") // abandoned, or the connection is gone
		case c.fits(m.Shard):
			c.grant(m)
		default:
			kept = append(kept, m)
		}
	}
	clear(c.held[len(kept):])
	c.held = kept
}

// grant issues an ID for m: ControlID first, then random IDs unique among the idle and reserved
// ones. If m's stream gave up meanwhile, the reservation is undone.
func (c *coordinator) grant(m messages.ReserveID) {
	id := ControlID
	if c.issuedZero {
		var raw [IDLen]byte
		for {
			_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails (Go 1.24+)
			id = hex.EncodeToString(raw[:])
			if _, idle := c.idle[id]; !idle && c.reserved[id] == "" && id != ControlID {
				break
			}
		}
	}
	if !m.Deliver(id) {
		return
	}
	c.issuedZero = true
	c.reserved[id] = m.Shard.ID
	c.shards[m.Shard.ID].reserved++
}

// release ends the reservation of a stream that will not become idle: its room goes to a held
// stream. If it was the control stream's, the next stream gets ControlID instead: the control
// stream must exist exactly once.
func (c *coordinator) release(id string) {
	if c.unreserve(id) {
		if id == ControlID {
			c.issuedZero = false
		}
		c.grantHeld()
	}
}

// unreserve ends the reservation of id, if it has one.
func (c *coordinator) unreserve(id string) bool {
	shard, ok := c.reserved[id]
	if !ok {
		return false
	}
	delete(c.reserved, id)
	if st := c.shards[shard]; st != nil {
		st.reserved--
	}
	return true
}

// failFast returns the error that fails a request at once instead of letting it wait: the
// pool's error (invalid configuration, listen failure, escalation) while no connection is up.
func (c *coordinator) failFast() error {
	if len(c.shards) > 0 {
		return nil
	}
	return c.fatal
}

func (c *coordinator) setFatal(err error) {
	c.fatal = err
	c.noteErr(err)
	if c.failFast() == nil {
		return
	}
	for _, g := range c.anyWaiter {
		g.Deliver(messages.Stream{Err: err})
	}
	c.anyWaiter = nil
	for id := range c.idWaiters {
		c.failIDWaiters(id, err)
	}
	c.waiters = 0
}

func (c *coordinator) noteErr(err error) {
	if err != nil {
		c.lastErr, c.lastErrAt = err, time.Now()
	}
}

func (c *coordinator) stop() {
	if c.timer != nil {
		c.timer.Stop()
	}
	c.started = false
	for _, g := range c.anyWaiter {
		g.Deliver(messages.Stream{Err: messages.ErrClosed})
	}
	for id := range c.idWaiters {
		c.failIDWaiters(id, messages.ErrClosed)
	}
	c.anyWaiter, c.waiters = nil, 0
	for _, w := range c.ready {
		w.Reply <- messages.ErrClosed
	}
	c.ready = nil
}

func (c *coordinator) snapshot() messages.Snapshot {
	s := messages.Snapshot{
		Idle:       c.usable(),
		Control:    c.idle[ControlID] != nil,
		Capacity:   c.capacity,
		Shards:     c.cfg.Shards,
		ShardsUp:   len(c.shards),
		Waiters:    c.waiters,
		PeerClosed: len(c.lingering),
		Errors:     c.userErrors,
		Opened:     c.stats.opened,
		HandedOut:  c.stats.handedOut,
		Discarded:  c.stats.discarded,
		Failed:     c.stats.failed,
		Restarts:   c.stats.restarts,
		Refused:    c.stats.refused,
		Err:        c.fatal,
		LastErr:    c.lastErr,
		LastErrAt:  c.lastErrAt,
		ListenAddr: c.listenAddr,
		MinCap:     c.cfg.MinCap,
		MaxCap:     c.cfg.MaxCap,
		IssuedZero: c.issuedZero,
	}
	if c.cfg.Client {
		s.Interval = c.interval
		s.Running = c.started && len(c.shards) > 0
		for _, st := range c.shards {
			s.Opening += st.opening
		}
	} else {
		s.Capacity = c.cfg.MaxCap
		s.Running = c.started && c.listenAddr != ""
		s.Opening = len(c.reserved) + len(c.held)
	}
	return s
}
