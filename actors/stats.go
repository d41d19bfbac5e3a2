package actors

import (
	"slices"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool/messages"
)

// The coordinator's counters and its snapshot of the pool (messages.Stats).

// waitHistogram counts how long served Get/Accept calls waited, in messages.WaitBounds buckets.
type waitHistogram struct {
	messages.WaitHistogram
}

var waitBounds = messages.WaitBounds()

func (h *waitHistogram) observe(d time.Duration) {
	h.Count++
	h.Sum += d
	if d == 0 {
		h.Counts[0]++
		return
	}
	i, _ := slices.BinarySearch(waitBounds, d) // the first bound >= d, or len: the last bucket
	h.Counts[i]++
}

// countRefusal counts a connection the server refused.
func (c *coordinator) countRefusal(reason refusalReason) {
	c.stats.refused++
	r := &c.stats.refusals
	switch reason {
	case refusedNotAllowed:
		r.NotAllowed++
	case refusedMoved:
		r.Moved++
	case refusedCertificate:
		r.Certificate++
	case refusedFull:
		r.Full++
	}
}

// noteUp counts a connection that came up in a slot that had held one before.
func (c *coordinator) noteUp(slot int) {
	if slot < 0 || slot >= len(c.slotsSeen) {
		return
	}
	if c.slotsSeen[slot] {
		c.stats.reconnects++
	}
	c.slotsSeen[slot] = true
}

// inUseSweepMin is how many handed-out streams a connection keeps track of before the first
// sweep; after a sweep, the next comes when the list has doubled.
const inUseSweepMin = 64

// trackInUse records a stream handed out from st, and sweeps st's list of the streams whose
// write side has closed once it has doubled since the last sweep: a closed stream is forgotten
// within amortised O(1) per hand-out, and never kept alive long by the list.
func (st *shardLoad) trackInUse(s *quic.Stream) {
	st.inUse = append(st.inUse, s)
	if len(st.inUse) >= max(2*st.inUseSwept, inUseSweepMin) {
		st.sweepInUse()
	}
}

// sweepInUse drops the handed-out streams whose write side has closed.
func (st *shardLoad) sweepInUse() {
	kept := st.inUse[:0]
	for _, s := range st.inUse {
		if s.Context().Err() == nil {
			kept = append(kept, s)
		}
	}
	clear(st.inUse[len(kept):])
	st.inUse, st.inUseSwept = kept, len(kept)
}

// state answers a State request. (Not in Receive itself: the snapshot is large, and Receive's
// frame is on the stack of every message the pool handles.)
func (c *coordinator) state(m messages.State) {
	c.answer(deliver(m.Reply, c.snapshot()))
}

// snapshot is the pool's state now, taken in one step.
func (c *coordinator) snapshot() messages.Stats {
	c.waiters.sweep(time.Now())
	s := messages.Stats{
		Name:       c.rt.PoolName,
		Side:       "server",
		Idle:       c.idle.usable,
		Control:    c.idle.hasControl(),
		PeerClosed: c.idle.peerClosedCount(),
		Withheld:   c.idle.withheld(),
		MinCap:     c.rt.MinCap,
		MaxCap:     c.rt.MaxCap,
		Shards:     c.rt.SlotCount(),
		ShardsUp:   c.shards.count(),
		Draining:   len(c.draining),
		Waiters:    c.waiters.n,
		Errors:     c.userErrors,
		Running:    c.running(),
		ListenAddr: c.listenAddr,
		Opened:     c.stats.opened,
		HandedOut:  c.stats.handedOut,
		Discarded:  c.stats.discarded,
		Lost:       c.stats.lost,
		Failed:     c.stats.failed,
		Refused:    c.stats.refused,
		Restarts:   c.stats.restarts,
		Dropped:    c.stats.dropped,
		Violations: c.stats.violations,
		Reconnects: c.stats.reconnects,
		Reclaimed:  c.issuer.reclaimed,
		Refusals:   c.stats.refusals,
		Wait:       c.stats.wait.WaitHistogram,
		Err:        c.errNow(),
		FailFast:   c.failFast() != nil,
	}
	now := time.Now()
	for _, st := range c.shards.all {
		st.sweepInUse()
		q := st.conn.ConnectionStats()
		s.Conns = append(s.Conns, messages.ConnStats{Slot: st.slot, Remote: st.conn.RemoteAddr().String(),
			Idle: st.idle, Suspect: st.peerSilent, Former: st.former, Up: now.Sub(st.upAt), Since: st.upAt, LastHeard: now.Sub(st.heard),
			SmoothedRTT: q.SmoothedRTT, LatestRTT: q.LatestRTT, InUse: len(st.inUse),
			Opened: st.opened, Failed: st.failed,
			PacketsSent: q.PacketsSent, PacketsReceived: q.PacketsReceived, PacketsLost: q.PacketsLost,
			BytesSent: q.BytesSent, BytesReceived: q.BytesReceived})
	}
	slices.SortFunc(s.Conns, func(a, b messages.ConnStats) int { return a.Slot - b.Slot })
	if c.rt.Client {
		s.Side = "client"
		s.Capacity, s.Interval = c.refill.capacity, c.refill.interval
		for _, st := range c.shards.all {
			s.Opening += st.opening
		}
	} else {
		s.Capacity = c.rt.MaxCap
		s.Opening = c.heldCount()
	}
	return s
}
