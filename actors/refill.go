package actors

// The client's refill and tuning. NodePass's rules, once per interval: fewer than lowRatio of
// the capacity idle shortens the interval by intervalStep, more than highRatio lengthens it;
// streams created in the cycle below lowRatio of the capacity lower it by one, above highRatio
// raise it by one. On top of them, demand: a taken stream is replaced without waiting for the
// tick (in a batch while the pool holds plenty or has a batch under way, coalesce), and a
// hand-out that empties the pool sends the capacity to MaxCap (exhausted).

import "time"

const (
	intervalStep = 100 * time.Millisecond
	lowRatio     = 0.2
	highRatio    = 0.8

	// replaceBatch is how many taken streams a client replaces together while it holds plenty of
	// idle streams or has as many opens under way (coalesce), and replaceDelay the longest a
	// replacement waits for the rest of its batch.
	replaceBatch = 8
	replaceDelay = 2 * time.Millisecond
)

// refiller is the client's tuning state.
type refiller struct {
	capacity int
	interval time.Duration
	created  int // streams that became idle since the last tick
	// batchDue fires replaceDue{batch} while replacements wait for the rest of their batch; nil
	// when none wait.
	batchDue *time.Timer
	batch    int
}

// capacity is the number of idle streams the pool aims at: tuned on a client, MaxCap on a server.
func (c *coordinator) capacity() int {
	if c.rt.Client {
		return c.refill.capacity
	}
	return c.rt.MaxCap
}

// share is the number of idle streams one connection is meant to hold.
func (c *coordinator) share() int {
	return min((c.capacity()+c.rt.Shards-1)/c.rt.Shards, c.rt.PerShard)
}

// replenish makes up for streams that left the idle set, in the step they left: a server gives
// the room to streams held for lack of it (grantHeld); a client asks the shards to open the
// streams the pool lacks (refillLimit) at once.
func (c *coordinator) replenish() { c.makeUp(false) }

// replaceTaken is replenish after a hand-out: on a client, the streams taken may wait to be
// opened with the next ones taken (coalesce). Only takes wait: a stream missing for another
// reason (the control stream of a fill, which takes no slot; a discarded or lost one) is
// replaced at once, so that neither a fill nor a recovery waits replaceDelay for its last few.
func (c *coordinator) replaceTaken() { c.makeUp(true) }

func (c *coordinator) makeUp(mayWait bool) {
	if !c.rt.Client {
		c.grantHeld()
		return
	}
	need, coming := c.missing()
	if mayWait && c.coalesce(need, coming) {
		return
	}
	replacing := mayWait || c.refill.batchDue != nil // taken streams, or some waited for a batch
	c.refillUpTo(c.refillLimit(), need, replacing)
}

// coalesce (client) reports whether the streams the pool lacks may wait to be opened together
// with the next ones taken, and then makes sure they are asked for within replaceDelay
// (replaceDue). They may wait when fewer than replaceBatch are missing, no WaitReady is pending,
// and either the pool holds plenty (at least half the capacity, and replaceBatch, idle: no
// caller waits for them) or it runs low behind a batch: replaceBatch opens are under way on
// connections that answer (opensUnderWay), more than the callers here that wait for any
// stream, so that each of those gets one of them. Opened one at a time, each replacement costs
// its own packets both ways (the handshake byte, the ID) and a worker's wake; opened in a batch,
// they share them. Tunnels at 16 workers on loopback: 2.2 packets per op instead of 2.8 (32/64),
// and a quarter less CPU per op on 64/1024. A pool drained as fast as it fills (64 workers on
// 32/64, a burst) opened one stream per take before it batched behind a batch: 2.35 packets and
// 46µs of CPU per op at 64 workers, against 1.89 and 39µs. The server's callers are another
// matter: nothing tells a client how many wait, and those beyond the opens under way may wait
// for a batch (at most replaceDelay); in a burst of 128 takes on 32/64 the last was served
// sooner all the same (the CPU the single opens cost was the larger delay).
func (c *coordinator) coalesce(need, coming int) bool {
	if !c.batchMayWait(need, coming) {
		return false
	}
	if r := &c.refill; r.batchDue == nil {
		r.batch++
		due := replaceDue{batch: r.batch}
		r.batchDue = time.AfterFunc(c.rt.replaceDelay(), func() { c.rt.Tell(due) })
	}
	return true
}

// batchMayWait reports whether need missing streams, with coming opens under way, may wait for a
// batch (coalesce).
func (c *coordinator) batchMayWait(need, coming int) bool {
	if need <= 0 || need >= replaceBatch || len(c.ready) > 0 { // a WaitReady waits for them
		return false
	}
	runsLow := c.idle.usable < max(c.refill.capacity/2, replaceBatch)
	return !runsLow || (coming >= replaceBatch && len(c.waiters.any) < coming)
}

// batchCheck (client), after a stream came: replacements that wait for a batch behind the opens
// under way are asked for as soon as those have come and the pool still runs low, not
// replaceDelay after the first was taken (the last of a burst's refill would wait for nothing).
func (c *coordinator) batchCheck() {
	if c.refill.batchDue != nil && !c.batchMayWait(c.missing()) {
		c.replenish()
	}
}

// replaceDue (client): the replacements that waited for a batch are asked for now, however many,
// unless a refill asked for them meanwhile (a stale m).
func (c *coordinator) replaceDue(m replaceDue) {
	if c.refill.batchDue != nil && m.batch == c.refill.batch {
		c.replenish()
	}
}

// endBatchWait stops the wait for a batch: the refill under way asks for every missing stream.
func (r *refiller) endBatchWait() {
	if r.batchDue != nil {
		r.batchDue.Stop()
		r.batchDue = nil
	}
}

// missing is how many streams a client lacks for its capacity, the opens under way counted, and
// how many those are (opensUnderWay).
func (c *coordinator) missing() (need, coming int) {
	coming = c.opensUnderWay()
	return c.refill.capacity - c.idle.usable - coming, coming
}

// opensUnderWay is how many opens are under way, except a silent connection's: like its idle
// streams, they may not come for a while (an open waits for its answer up to the handshake
// timeout).
func (c *coordinator) opensUnderWay() int {
	n := 0
	for _, st := range c.shards.all {
		if !st.suspect {
			n += st.opening
		}
	}
	return n
}

// refillLimit is how many idle streams a live client shard may be asked to hold. With every
// shard up and answering it is the shard's fair share of the capacity (capacity / shard slots),
// so that every connection carries traffic. While some are down (still connecting at the start,
// or redialing) or silent, it is as many as a connection holds (connectionHold): the first
// connection up fills the pool at once, instead of to its share while the others finish their
// handshakes, and the live ones take up the share of a connection that died or went silent.
// The hand-outs and refills that follow spread the streams over the connections again
// (leastLoaded).
func (c *coordinator) refillLimit() int {
	if !c.allAnswer() {
		return c.connectionHold()
	}
	return c.share()
}

// allAnswer reports whether every shard slot has a connection up and answering (not suspect).
func (c *coordinator) allAnswer() bool { return c.shards.count()-c.silent >= c.rt.Shards }

// connectionHold is the most idle streams one client connection ever holds: the pool's maxCap,
// at most PerShard. The trust rules judge a server's closes against it.
func (c *coordinator) connectionHold() int { return min(c.rt.MaxCap, c.rt.PerShard) }

// refillUpTo asks for the need missing streams (missing) from the least loaded shard below
// limit. A single one goes straight to an idle opener of the shard if it has one; a batch that
// replaces taken streams goes whole to one shard (refillBatch); others are spread (refillMany),
// so that a fill, or a recovery while no batch waits, has every connection open its share at
// once.
func (c *coordinator) refillUpTo(limit, need int, replacing bool) {
	if !c.rt.Client || !c.started || c.shards.count() == 0 {
		return
	}
	c.refill.endBatchWait()
	if need == 1 { // the replacement of one taken stream: the common case, without allocating
		if best := c.leastLoaded(limit); best != nil {
			best.opening++
			if !best.opener.offer() {
				c.engine.Send(best.pid, openStreams{n: 1})
			}
		}
		return
	}
	if need > 1 && !(replacing && c.refillBatch(need, limit)) {
		c.refillMany(need, limit)
	}
}

// refillBatch asks the least loaded shard below limit for all need replacements of taken
// streams, if need is at most a batch (replaceBatch) and the shard can hold them (batchHold),
// and reports whether it did. Opened together on one connection, a batch's
// handshake bytes and IDs share packets; spread one per connection, each pays its own. The shard
// may go up to need-1 streams above its share until the next batches, which go to the others,
// even the load out: on a 64/1024 pool (eight connections) at 16 workers, 2.57 packets per
// tunnel op instead of 2.80, and BenchmarkTunnelEightConnections 26.0 against 29.6µs per op
// (means of four alternating runs).
func (c *coordinator) refillBatch(need, limit int) bool {
	if need > replaceBatch {
		return false
	}
	best := c.leastLoaded(limit)
	if best == nil || best.idle+best.opening+need > c.batchHold() {
		return false
	}
	best.opening += need
	c.engine.Send(best.pid, openStreams{n: need})
	return true
}

// batchHold is the most idle and opening streams a batch may bring one connection to: what a
// connection holds (connectionHold), and, with every shard up, MaxCap over the shards, the share
// a server gives each of them when it serves this client alone (more would wait there for room).
func (c *coordinator) batchHold() int {
	if !c.allAnswer() {
		return c.connectionHold()
	}
	return min(c.connectionHold(), (c.rt.MaxCap+c.rt.Shards-1)/c.rt.Shards)
}

// refillMany spreads need opens over the shards below limit, least loaded first, and sends each
// shard one openStreams.
func (c *coordinator) refillMany(need, limit int) {
	before := make(map[*shardLoad]int, c.shards.count())
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
		c.engine.Send(st.pid, openStreams{n: st.opening - n})
	}
}

// leastLoaded returns the live shard with the fewest idle and opening streams, if it has fewer
// than limit; of equals, the one that came up first (each pick loads the shard it returns, so
// the next pick goes elsewhere).
func (c *coordinator) leastLoaded(limit int) *shardLoad {
	var best *shardLoad
	for _, st := range c.shards.all {
		load := st.idle + st.opening
		if !st.suspect && load < limit && (best == nil || load < best.idle+best.opening) {
			best = st
		}
	}
	return best
}

// waitedFor is the most idle streams a pending WaitReady waits for, 0 if none: the capacity does
// not decay below it (waitReady raised it there).
func (c *coordinator) waitedFor() int {
	n := 0
	for _, w := range c.ready {
		n = max(n, w.N)
	}
	return n
}

// exhausted (client) is called when a hand-out leaves no idle stream: callers on this side, or
// the server's Accept callers (whose number nothing tells this side), want more streams than the
// pool holds. The capacity goes to MaxCap at once, so the next round trip opens every stream the
// pool may hold, instead of growing one stream per tick. tune brings it back down,
// one stream per interval, as NodePass does, once the streams are no longer taken.
func (c *coordinator) exhausted() {
	c.refill.capacity = c.rt.MaxCap
}

// tune runs once per tick: the interval follows how many streams are idle, the capacity how many
// were created.
func (c *coordinator) tune() {
	r := &c.refill
	idle, capacity := float64(c.idle.usable), float64(r.capacity)
	switch {
	case idle < capacity*lowRatio && r.interval > c.rt.MinIvl:
		r.interval = max(r.interval-intervalStep, c.rt.MinIvl)
	case idle > capacity*highRatio && r.interval < c.rt.MaxIvl:
		r.interval = min(r.interval+intervalStep, c.rt.MaxIvl)
	}
	ratio := float64(r.created) / capacity
	r.created = 0
	switch {
	case ratio < lowRatio && r.capacity > max(c.rt.MinCap, c.waitedFor()):
		r.capacity--
	case ratio > highRatio && r.capacity < c.rt.MaxCap:
		r.capacity++
	}
}
