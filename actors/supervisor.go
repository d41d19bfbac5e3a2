package actors

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool/internal/core"
	"github.com/quicpool/quicpool/internal/wire"
	"github.com/quicpool/quicpool/messages"
)

const (
	// maxRestartLog bounds the restart times a slot remembers for the intensity limit.
	maxRestartLog = 1024
	// closeWait bounds how long shutdown waits for shards to stop and connections to close.
	closeWait = 5 * time.Second
)

// errReplaced is why a server shard stops when a reconnecting client replaces its stale
// connection.
var errReplaced = errors.New("quicpool: connection replaced by a newer one from the same client")

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
	generation int // incarnation counter: every shard gets a fresh ID

	slots       []slot
	lastReplace map[netip.Addr]time.Time // server: when each address last replaced a connection
	refusals    uint64                   // server: connections refused since start
}

// slot is the supervisor's record of one shard slot.
type slot struct {
	shard *actor.PID // the live incarnation; nil while the slot is free or waits for its restart

	// Client restarts.
	attempts int         // failures in a row
	restarts []time.Time // recent restarts, for the intensity limit
	timer    *time.Timer // the pending restart

	// Server connections.
	peer   netip.Addr // the client holding the slot
	active time.Time  // when its connection last accepted a stream
}

func newSupervisor(rt *runtime) actor.Producer {
	return func() actor.Receiver {
		return &supervisor{rt: rt, slots: make([]slot, rt.Shards), lastReplace: make(map[netip.Addr]time.Time)}
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
	case shardActive:
		s.touch(m)
	case restartSlot:
		s.restart(m.slot)
	case shardsStopped:
		close(m.reply)
	case listenResult:
		s.listened(m)
	case connAccepted:
		s.admit(m.conn, m.closed)
	case refusal:
		s.refused(m.addr, m.err)
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
	for i := range s.slots {
		s.spawnClient(i)
	}
}

// current reports whether shard is the live incarnation of slot i (reports from replaced
// incarnations are stale).
func (s *supervisor) current(shard *actor.PID, i int) bool {
	return i >= 0 && i < len(s.slots) && s.slots[i].shard != nil && s.slots[i].shard.ID == shard.ID
}

// spawnShard spawns a shard as a top-level actor with a fresh ID.
func (s *supervisor) spawnShard(p actor.Producer, kind string, i int) *actor.PID {
	s.generation++
	return s.rt.spawn(s.engine.Spawn, p, fmt.Sprintf("%s%d.%d", kind, i, s.generation))
}

func (s *supervisor) spawnClient(i int) {
	s.slots[i].shard = s.spawnShard(newClientShard(s.rt, i), "client", i)
}

func (s *supervisor) restart(i int) {
	if !s.shutting && s.slots[i].shard == nil {
		s.spawnClient(i)
	}
}

// shardFailed stops a failed shard, tells the coordinator, and on a client schedules the slot's
// restart.
func (s *supervisor) shardFailed(m shardFailed) {
	if !s.current(m.shard, m.slot) {
		return
	}
	s.slots[m.slot].shard = nil
	s.engine.Poison(m.shard)
	reason, permanent := permanent(m.err)
	s.rt.emit(s.engine, messages.Event{Kind: messages.EventShardFailed, Slot: m.slot, Err: m.err, Permanent: permanent})
	failFast := false
	if s.rt.Client && !s.shutting {
		failFast = s.scheduleRestart(m, permanent, reason)
	}
	s.engine.Send(s.rt.coordinator, shardDown{shard: m.shard, err: m.err, failFast: failFast})
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
		if sl := &s.slots[i]; sl.shard != nil {
			waits = append(waits, s.engine.PoisonCtx(deadline, sl.shard))
			sl.shard = nil
		}
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
		if sl := &s.slots[i]; sl.shard != nil {
			s.engine.Poison(sl.shard)
			sl.shard = nil
		}
	}
	if s.rt.SupervisorStopped != nil && !isClosed(s.rt.SupervisorStopped) {
		close(s.rt.SupervisorStopped)
	}
}

func (s *supervisor) stopTimers() {
	for i := range s.slots {
		if t := s.slots[i].timer; t != nil {
			t.Stop()
		}
	}
}

// serve (server) listens, retrying with backoff until it can, then accepts connections until the
// supervisor stops or the pool closes. It closes the transport only once every connection it
// accepted has been closed (or after closeWait), so that each one got a CONNECTION_CLOSE.
func (s *supervisor) serve() {
	for attempt := 1; ; attempt++ {
		ln, closeTransport, err := s.rt.listen(s.engine)
		if err != nil {
			s.engine.Send(s.self, listenResult{err: err})
			select {
			case <-time.After(s.rt.Policy.Backoff(attempt)):
				continue
			case <-s.ctx.Done():
				return
			}
		}
		attempt = 0
		s.engine.Send(s.self, listenResult{addr: ln.Addr()})
		var open []chan struct{}
		for {
			conn, err := ln.Accept(s.ctx)
			if err != nil {
				break
			}
			closed := make(chan struct{})
			open = append(stillOpen(open), closed)
			s.engine.Send(s.self, connAccepted{conn: conn, closed: closed})
		}
		_ = ln.Close()
		waitClosed(open, closeWait)
		closeTransport()
		if s.ctx.Err() != nil {
			return
		}
		// The socket failed under us: listen again.
	}
}

func stillOpen(chans []chan struct{}) []chan struct{} {
	kept := chans[:0]
	for _, ch := range chans {
		if !isClosed(ch) {
			kept = append(kept, ch)
		}
	}
	return kept
}

func waitClosed(chans []chan struct{}, bound time.Duration) {
	timeout := time.NewTimer(bound)
	defer timeout.Stop()
	for _, ch := range chans {
		select {
		case <-ch:
		case <-timeout.C:
			return
		}
	}
}

// listened reports the outcome of a listen.
func (s *supervisor) listened(m listenResult) {
	if m.err != nil {
		s.rt.Log.Error("server pool cannot listen", "err", m.err)
		s.rt.emit(s.engine, messages.Event{Kind: messages.EventListenFailed, Slot: -1, Err: m.err})
		s.engine.Send(s.rt.coordinator, listenFailed{err: m.err})
		return
	}
	s.rt.Log.Info("server pool listening", "addr", m.addr.String())
	s.rt.emit(s.engine, messages.Event{Kind: messages.EventListening, Slot: -1, Addr: m.addr.String()})
	s.engine.Send(s.rt.coordinator, listening{addr: m.addr.String()})
}

// admit gives an accepted connection a free shard slot, replaces a stale connection of the same
// client, or refuses it.
func (s *supervisor) admit(conn *quic.Conn, closed chan struct{}) {
	addr := conn.RemoteAddr()
	if s.shutting {
		s.closeConn(conn, closed, wire.ConnCodeClosed, "quicpool: pool closed")
		return
	}
	if s.rt.Allow != nil { // normally refused before the handshake; a migrated address is caught here
		if err := s.rt.Allow(addr); err != nil {
			s.refuse(conn, closed, err)
			return
		}
	}
	i := s.freeSlot()
	if i < 0 {
		i = s.replaceStale(addr)
	}
	if i < 0 {
		s.refuse(conn, closed, fmt.Errorf("%w: all %d shard slots are taken", core.ErrPoolFull, len(s.slots)))
		return
	}
	s.slots[i].shard = s.spawnShard(newServerShard(s.rt, i, conn, closed), "server", i)
	s.slots[i].peer, s.slots[i].active = addrIP(addr), time.Now()
	s.rt.Log.Info("client connected", "slot", i, "remote", addr.String())
}

func (s *supervisor) touch(m shardActive) {
	if s.current(m.shard, m.slot) {
		s.slots[m.slot].active = time.Now()
	}
}

func (s *supervisor) freeSlot() int {
	for i := range s.slots {
		if s.slots[i].shard == nil {
			return i
		}
	}
	return -1
}

// replaceStale frees the slot of a connection from addr's IP that has been quiet for StaleAfter,
// if there is one and the address has not replaced a connection within StaleAfter: a client that
// reconnects while the server still holds its old connection gets back in, live connections of
// one address never displace each other, and no other address can displace a client at all. It
// returns the freed slot or -1.
func (s *supervisor) replaceStale(addr net.Addr) int {
	ip, now, victim, stale := addrIP(addr), time.Now(), -1, s.rt.StaleAfter
	if last, ok := s.lastReplace[ip]; ok && now.Sub(last) < stale {
		return -1
	}
	for i := range s.slots {
		sl := &s.slots[i]
		if sl.shard != nil && sl.peer == ip && now.Sub(sl.active) >= stale &&
			(victim < 0 || sl.active.Before(s.slots[victim].active)) {
			victim = i
		}
	}
	if victim < 0 {
		return -1
	}
	old := s.slots[victim].shard
	s.rt.Log.Info("client reconnected: replacing its stale connection", "slot", victim, "remote", addr.String(),
		"quiet for", now.Sub(s.slots[victim].active).Round(time.Second))
	s.rt.emit(s.engine, messages.Event{Kind: messages.EventReplaced, Slot: victim, Addr: addr.String()})
	s.lastReplace[ip] = now
	s.slots[victim].shard = nil
	s.engine.Poison(old)
	s.engine.Send(s.rt.coordinator, shardDown{shard: old, err: errReplaced})
	return victim
}

func addrIP(addr net.Addr) netip.Addr {
	if udp, ok := addr.(*net.UDPAddr); ok {
		ip, _ := netip.AddrFromSlice(udp.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// refuse counts, reports and closes a connection the pool does not take.
func (s *supervisor) refuse(conn *quic.Conn, closed chan struct{}, reason error) {
	s.refused(conn.RemoteAddr().String(), reason)
	s.closeConn(conn, closed, wire.ConnCodeRefused, reason.Error())
}

// closeConn closes a connection in a goroutine (CloseWithError waits for the connection's run
// loop) and then marks it closed for the listener.
func (s *supervisor) closeConn(conn *quic.Conn, closed chan struct{}, code quic.ApplicationErrorCode, reason string) {
	s.rt.Go(func() {
		defer close(closed)
		_ = conn.CloseWithError(code, reason)
	})
}

// refused counts, reports and logs a refused connection. Log lines thin out under a flood: the
// 1st, 2nd, 4th, 8th... refusal is logged, with the count so far.
func (s *supervisor) refused(addr string, reason error) {
	s.refusals++
	s.rt.emit(s.engine, messages.Event{Kind: messages.EventRefused, Slot: -1, Addr: addr, Err: reason})
	s.engine.Send(s.rt.coordinator, connRefused{})
	if s.refusals&(s.refusals-1) == 0 {
		s.rt.Log.Warn("connection refused", "remote", addr, "reason", reason, "refused so far", s.refusals)
	}
}
