package actors

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool/internal/core"
	"github.com/quicpool/quicpool/messages"
)

const (
	// maxRestartLog bounds the restart times a slot remembers for the intensity limit.
	maxRestartLog = 1024
	// closeWait bounds how long shutdown waits for shards to stop and connections to close.
	closeWait = 5 * time.Second
)

var (
	// errReplaced is why a server closes a connection its client replaced twice over: the
	// connection a reconnecting client left behind stays open until a newer one replaces the
	// connection that replaced it.
	errReplaced = errors.New("quicpool: connection replaced by a newer one from the same client")
	// errSwitchedOver is why a client connection left the pool: a standby took over from it.
	errSwitchedOver = errors.New("quicpool: connection silent; a new connection took over")
)

// supervisor owns the shard slots: which shard actor holds each, and (client) each slot's restart
// history; (server) the listener and which client holds each slot. On Start a client supervisor
// spawns one shard per slot; a server supervisor listens and gives each accepted connection a
// free slot.
//
// A shard whose connection fails reports shardFailed here. The supervisor stops it, tells the
// coordinator (shardDown, with whether calls should fail at once), and, on a client, spawns a
// fresh incarnation (a new actor ID) after the policy's backoff: at the policy's ceiling when the
// failure is permanent or the slot restarts more often than the policy allows.
//
// Shards are top-level actors that the supervisor stops itself, exactly once: hollywood v1.0.5
// stops a parent by poisoning every child again, with no deadline, which never completes for a
// child already stopping.
type supervisor struct {
	rt     *runtime
	engine *actor.Engine
	self   *actor.PID
	ctx    context.Context // cancelled when the supervisor stops: ends the listener
	cancel context.CancelFunc

	started    bool
	shutting   bool
	generation int         // incarnation counter: every shard gets a fresh ID
	firstDial  bool        // client: the other slots wait for the first connection (startOthers)
	othersNext int         // client: the slot whose first dial starts next (dialNextOther)
	othersDue  *time.Timer // client: the fallback for dialOthers, then for the next slot's dial

	slots          []slot
	refusals       uint64         // server: connections refused since start
	recentRefusals recentRefusals // server: the addresses refused last, counted once (listener.go)
	credits        credits        // server: the stream credit of the connections not closed (admission.go)
}

// slot is the supervisor's record of one shard slot.
type slot struct {
	shard   *actor.PID // the incarnation whose connection serves; nil while there is none
	suspect bool       // shard's peer has gone silent

	// former is the incarnation whose silent connection the slot's took over from and that is
	// still open (drain.go): a client's drains its streams in use; a server's stays in the pool
	// until its client closes it or it times out, or takes the slot back. One per slot: the next
	// takeover closes it.
	former       *actor.PID
	formerSilent bool       // server: former's peer is silent (its credit does not count)
	formerPeer   netip.Addr // server: the client holding former

	// Client.
	next      *actor.PID  // the incarnation dialing to take over: a first dial, a restart, or a standby for a silent shard
	downSince time.Time   // when the slot lost a connection that answers; zero while it has one
	attempts  int         // failures in a row
	restarts  []time.Time // recent restarts, for the intensity limit
	timer     *time.Timer // the pending restart
	failing   bool        // a failure since it last connected was permanent or over the restart limit

	// Server.
	peer netip.Addr // the client holding the slot
}

func newSupervisor(rt *runtime) actor.Producer {
	return func() actor.Receiver {
		return &supervisor{rt: rt, slots: make([]slot, rt.SlotCount())}
	}
}

func (s *supervisor) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		s.engine, s.self = c.Engine(), c.PID()
		s.ctx, s.cancel = context.WithCancel(s.rt.Ctx)
	case actor.Stopped:
		s.stopAll()
	case core.Start:
		s.start()
	case core.Shutdown:
		s.shutdown(m.Reply)
	case shardFailed:
		s.shardFailed(m)
	case connected:
		s.connected(m)
	case drained:
		s.drained(m)
	case liveness:
		s.liveness(m)
	case dialOthers:
		s.startOthers()
	case dialNext:
		if m.slot == s.othersNext-1 {
			s.dialNextOther()
		}
	case restartSlot:
		s.restart(m.slot)
	case shardsStopped:
		close(m.reply)
	case listenResult:
		s.listened(m)
	case connAccepted:
		s.admit(m.conn, m.closed)
	case refusal:
		if !m.perInitial || !s.recentRefusals.repeat(m.addr, time.Now()) {
			s.refused(m.addr, m.err, m.reason)
		}
	case creditAsk:
		s.giveCredit(m)
	case creditReturned:
		delete(s.credits.granted, m.id)
	}
}

func (s *supervisor) start() {
	if s.started || s.shutting || s.rt.Err != nil {
		return
	}
	s.started = true
	if !s.rt.Client {
		s.rt.Go(s.rt.guard(s.serve, func(err error) { s.engine.Send(s.self, listenResult{err: err}) }))
		return
	}
	s.firstDial = true
	s.slots[0].downSince = time.Now()
	s.spawnNext(0)
}

// othersWait bounds how long the other slots wait for the first connection to fill the pool
// (dialOthers) before they dial anyway.
const othersWait = time.Second

// dialGap bounds how long the first dial of one of the other slots holds up the next one's
// (dialNextOther). A handshake over loopback takes a few milliseconds, over a long path one or
// two round trips: a dial that takes longer is most likely waiting for its timeout.
const dialGap = 100 * time.Millisecond

// startOthers starts the other slots' dials once the first connection has opened the pool's
// capacity and a refill tick came since, or has opened as many streams as one connection holds
// (the coordinator's dialOthers: taken streams count), or cannot
// (an open failed, or othersWait passed since it came up), or a shard failed first: slot 0's
// dial, or its connection (another slot may still get through: the resolver is asked anew for
// every dial). Dialing them all at once would share the CPU between their TLS handshakes, and
// the first connection's streams would wait for it: dialing one first and filling the pool from
// it (it takes up the others' share meanwhile: refillLimit) fills a pool of up to 128 streams one
// handshake and one round of opens after the start.
func (s *supervisor) startOthers() {
	if !s.firstDial {
		return
	}
	s.firstDial = false
	if s.othersDue != nil {
		s.othersDue.Stop()
	}
	s.othersNext = 1
	s.dialNextOther()
}

// dialNextOther starts the first dial of the next of the other slots. The one after it starts
// when this one's dial ends, connected or failed, or after dialGap: one handshake at a time, so
// that the pool, just filled, serves its first callers without seven or sixty-three handshakes
// taking the CPU from them all at once. A slot's fast redial window starts with its first dial.
func (s *supervisor) dialNextOther() {
	if s.othersDue != nil {
		s.othersDue.Stop()
	}
	if s.shutting || s.othersNext < 1 || s.othersNext >= len(s.slots) {
		return
	}
	i := s.othersNext
	s.othersNext++
	s.slots[i].downSince = time.Now()
	s.spawnNext(i)
	if s.othersNext < len(s.slots) {
		wait := dialGap
		if s.rt.dialGap > 0 {
			wait = s.rt.dialGap
		}
		engine, self := s.engine, s.self
		s.othersDue = time.AfterFunc(wait, func() { engine.Send(self, dialNext{slot: i}) })
	}
}

// firstDialEnded moves the other slots' dials on when the latest of them ended.
func (s *supervisor) firstDialEnded(slot int) {
	if slot > 0 && slot == s.othersNext-1 {
		s.dialNextOther()
	}
}

// current reports whether shard is the serving or the next incarnation of slot i (reports from
// replaced incarnations are stale).
func (s *supervisor) current(shard *actor.PID, i int) bool {
	return i >= 0 && i < len(s.slots) && (same(s.slots[i].shard, shard) || same(s.slots[i].next, shard))
}

func same(a, b *actor.PID) bool { return a != nil && b != nil && a.ID == b.ID }

// spawnShard spawns a shard as a top-level actor with a fresh ID.
func (s *supervisor) spawnShard(p actor.Producer, kind string, i int) *actor.PID {
	s.generation++
	return s.rt.spawn(s.engine.Spawn, p, fmt.Sprintf("%s%d.%d", kind, i, s.generation), smallInbox)
}

// spawnNext starts a client incarnation that dials for slot i. It redials every
// core.RedialInterval until core.FastRedialWindow after the slot's outage began.
func (s *supervisor) spawnNext(i int) {
	sl := &s.slots[i]
	fastUntil := sl.downSince.Add(core.FastRedialWindow)
	if s.rt.oneAttempt {
		fastUntil = time.Time{}
	}
	sl.next = s.spawnShard(newClientShard(s.rt, i, fastUntil), "client", i)
}

func (s *supervisor) restart(i int) {
	sl := &s.slots[i]
	sl.timer = nil
	if !s.shutting && sl.next == nil && (sl.shard == nil || sl.suspect) {
		s.spawnNext(i)
	}
}

// connected makes a client incarnation whose connection came up the slot's serving one; the
// silent connection it replaces, if any, leaves the pool and drains (drain.go).
func (s *supervisor) connected(m connected) {
	sl := &s.slots[m.slot]
	if !same(sl.next, m.shard) {
		return
	}
	old, outage := sl.shard, time.Since(sl.downSince)
	sl.shard, sl.next, sl.suspect, sl.downSince, sl.failing = m.shard, nil, false, time.Time{}, false
	s.firstDialEnded(m.slot)
	if s.firstDial && s.othersDue == nil && len(s.slots) > 1 {
		engine, self := s.engine, s.self
		wait := othersWait
		if s.rt.othersWait > 0 {
			wait = s.rt.othersWait
		}
		s.othersDue = time.AfterFunc(wait, func() { engine.Send(self, dialOthers{}) })
	}
	if old != nil {
		s.rt.Log.Warn("switched over to a new connection; the silent one stays open for its streams in use",
			"slot", m.slot, "silent for", outage.Round(time.Millisecond))
		s.rt.emit(s.engine, messages.Event{Kind: messages.EventSwitchOver, Slot: m.slot})
		s.closeFormer(m.slot)
		sl.former = old
		s.rt.Tell(shardDown{shard: old, err: errSwitchedOver, drain: true})
	}
}

// drained stops a client shard whose connection, out of the pool since a switch-over, is done
// with its streams and closed.
func (s *supervisor) drained(m drained) {
	if m.slot < 0 || m.slot >= len(s.slots) || !same(s.slots[m.slot].former, m.shard) {
		return
	}
	s.rt.Log.Info("the connection a standby took over from is done with its streams: closed", "slot", m.slot)
	s.slots[m.slot].former = nil
	s.engine.Poison(m.shard)
}

// closeFormer closes the connection slot i took over from, if it is still open. A client's has
// left the coordinator already (it drains); a server's has not.
func (s *supervisor) closeFormer(i int) {
	sl := &s.slots[i]
	switch {
	case sl.former == nil:
	case s.rt.Client:
		s.engine.Poison(sl.former)
	default:
		s.retire(sl.former, errReplaced)
	}
	sl.former, sl.formerSilent, sl.formerPeer = nil, false, netip.Addr{}
}

// restoreFormer (server) gives slot i back to its former connection if the slot is free and the
// former answers: its client kept it after all (the client's liveness watch heard it again
// before its new connection came up, and closed the new one).
func (s *supervisor) restoreFormer(i int) {
	sl := &s.slots[i]
	if s.rt.Client || s.shutting || sl.shard != nil || sl.former == nil || sl.formerSilent {
		return
	}
	s.rt.Log.Info("the client kept its former connection: it takes its slot back", "slot", i)
	sl.shard, sl.peer, sl.suspect = sl.former, sl.formerPeer, false
	sl.former, sl.formerPeer = nil, netip.Addr{}
	s.rt.Tell(formerConn{shard: sl.shard, former: false})
}

// formerEnded handles the end of a slot's former connection (it failed or timed out) and
// reports whether m was about one.
func (s *supervisor) formerEnded(m shardFailed) bool {
	if m.slot < 0 || m.slot >= len(s.slots) || !same(s.slots[m.slot].former, m.shard) {
		return false
	}
	s.rt.Log.Info("the connection a new one took over from has ended", "slot", m.slot, "err", m.err)
	sl := &s.slots[m.slot]
	sl.former, sl.formerSilent, sl.formerPeer = nil, false, netip.Addr{}
	s.engine.Poison(m.shard)
	s.rt.Tell(shardDown{shard: m.shard})
	return true
}

// liveness acts on a serving connection that went silent or is heard again. A client dials a
// standby at once for a silent connection and drops the standby if the old one answers first.
func (s *supervisor) liveness(m liveness) {
	sl := &s.slots[m.slot]
	if same(sl.former, m.shard) {
		sl.formerSilent = m.suspect
		s.restoreFormer(m.slot)
		return
	}
	if !same(sl.shard, m.shard) || sl.suspect == m.suspect {
		return
	}
	sl.suspect = m.suspect
	if !m.suspect {
		s.rt.Log.Info("peer answers again", "slot", m.slot, "silent for", time.Since(m.heard).Round(time.Millisecond))
		s.rt.emit(s.engine, messages.Event{Kind: messages.EventAlive, Slot: m.slot})
		if s.rt.Client && sl.next != nil {
			s.retire(sl.next, nil)
			sl.next, sl.downSince = nil, time.Time{}
		}
		return
	}
	s.rt.Log.Warn("peer silent", "slot", m.slot, "since", time.Since(m.heard).Round(time.Millisecond))
	s.rt.emit(s.engine, messages.Event{Kind: messages.EventSuspect, Slot: m.slot})
	if s.rt.Client && sl.next == nil && sl.timer == nil && !s.shutting {
		sl.downSince = m.heard
		s.rt.emit(s.engine, messages.Event{Kind: messages.EventStandby, Slot: m.slot})
		s.spawnNext(m.slot)
	}
}

// retire stops a shard that is no longer wanted and tells the coordinator to forget it.
func (s *supervisor) retire(shard *actor.PID, why error) {
	s.engine.Poison(shard)
	s.rt.Tell(shardDown{shard: shard, err: why})
}

// shardFailed stops a failed shard, tells the coordinator, and on a client makes sure the slot
// gets a connection again: a standby already dialing takes over, or a restart is scheduled.
func (s *supervisor) shardFailed(m shardFailed) {
	if s.formerEnded(m) || !s.current(m.shard, m.slot) {
		return
	}
	sl := &s.slots[m.slot]
	if same(sl.next, m.shard) {
		sl.next = nil
	} else {
		sl.shard, sl.suspect = nil, false
		if s.rt.Client {
			// The connection that took over has failed (its server may even have refused it,
			// holding the old one): the one it took over from, draining, goes too, so that the
			// server frees its slot for the redial.
			s.closeFormer(m.slot)
		}
	}
	s.engine.Poison(m.shard)
	s.startOthers()
	s.firstDialEnded(m.slot)
	reason, permanent := permanent(m.err)
	var reset *quic.StatelessResetError
	if errors.As(m.err, &reset) {
		s.rt.Log.Warn("the server restarted: its stateless reset ended the connection", "slot", m.slot)
		s.rt.emit(s.engine, messages.Event{Kind: messages.EventStatelessReset, Slot: m.slot, Err: m.err})
	}
	s.rt.emit(s.engine, messages.Event{Kind: messages.EventShardFailed, Slot: m.slot, Err: m.err, Permanent: permanent})
	if s.rt.Client && !s.shutting {
		if sl.downSince.IsZero() {
			sl.downSince = time.Now()
		}
		if sl.next == nil && sl.timer == nil && (sl.shard == nil || sl.suspect) {
			sl.failing = s.scheduleRestart(m, permanent, reason) || sl.failing
		}
	}
	s.rt.Tell(shardDown{shard: m.shard, err: m.err, failFast: s.failing()})
	s.restoreFormer(m.slot)
}

// failing reports whether a client slot is failing (see slot.failing): while no connection is
// up, calls then fail at once, whichever slot failed last.
func (s *supervisor) failing() bool {
	return slices.ContainsFunc(s.slots, func(sl slot) bool { return sl.failing })
}

// scheduleRestart arms the restart of a client slot after the policy's backoff and reports
// whether calls should fail at once meanwhile: the failure is permanent, or the slot restarts
// more often than the policy allows. Either way the retry comes at the policy's ceiling.
func (s *supervisor) scheduleRestart(m shardFailed, permanent bool, reason string) (failFast bool) {
	sl, now, policy := &s.slots[m.slot], time.Now(), s.rt.Policy
	if m.upFor > 0 && policy.Healthy(m.upFor) {
		sl.attempts, sl.restarts = 0, sl.restarts[:0]
	}
	sl.attempts++
	sl.restarts = append(sl.restarts, now)
	if len(sl.restarts) > maxRestartLog {
		sl.restarts = sl.restarts[len(sl.restarts)-maxRestartLog:]
	}
	exceeded := policy.Exceeded(sl.restarts, now)
	delay := policy.Backoff(sl.attempts)
	switch {
	case permanent:
		delay = policy.Ceiling()
		s.rt.Log.Error("connection failed permanently; retrying at the slowest pace", "slot", m.slot, "why", reason, "in", delay)
	case exceeded:
		delay = policy.Ceiling()
		s.rt.Log.Error("connection keeps failing; retrying at the slowest pace", "slot", m.slot,
			"restarts", len(sl.restarts), "in", delay, "err", m.err)
	default:
		s.rt.Log.Info("shard restart scheduled", "slot", m.slot, "attempt", sl.attempts, "in", delay, "err", m.err)
	}
	s.rt.emit(s.engine, messages.Event{Kind: messages.EventRestartScheduled, Slot: m.slot, Attempt: sl.attempts,
		Delay: delay, Permanent: permanent, Err: m.err})
	engine, self, i := s.engine, s.self, m.slot
	sl.timer = time.AfterFunc(delay, func() { engine.Send(self, restartSlot{slot: i}) })
	return permanent || exceeded
}

// shutdown stops every shard; reply is closed once they all have, or after closeWait.
func (s *supervisor) shutdown(reply chan struct{}) {
	s.shutting = true
	deadline, cancel := context.WithTimeout(context.Background(), closeWait)
	var waits []context.Context
	for i := range s.slots {
		sl := &s.slots[i]
		for _, pid := range []*actor.PID{sl.shard, sl.next, sl.former} {
			if pid != nil {
				waits = append(waits, s.engine.PoisonCtx(deadline, pid))
			}
		}
		sl.shard, sl.next, sl.former = nil, nil, nil
	}
	s.stopTimers()
	engine, self := s.engine, s.self
	s.rt.Go(func() {
		defer cancel()
		for _, done := range waits {
			<-done.Done()
		}
		engine.Send(self, shardsStopped{reply: reply})
	})
}

// stopAll stops what is left when the supervisor itself stops.
func (s *supervisor) stopAll() {
	s.shutting = true
	if s.cancel != nil {
		s.cancel()
	}
	s.stopTimers()
	for i := range s.slots {
		sl := &s.slots[i]
		for _, pid := range []*actor.PID{sl.shard, sl.next, sl.former} {
			if pid != nil {
				s.engine.Poison(pid)
			}
		}
		sl.shard, sl.next, sl.former = nil, nil, nil
	}
	if s.rt.SupervisorStopped != nil && !core.IsClosed(s.rt.SupervisorStopped) {
		close(s.rt.SupervisorStopped)
	}
}

func (s *supervisor) stopTimers() {
	if s.othersDue != nil {
		s.othersDue.Stop()
	}
	for i := range s.slots {
		if t := s.slots[i].timer; t != nil {
			t.Stop()
		}
	}
}
