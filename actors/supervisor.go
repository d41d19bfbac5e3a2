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
	"github.com/quicpool/quicpool/messages"
)

// SupervisorConfig configures a pool's supervisor.
type SupervisorConfig struct {
	Runtime
	Coordinator *actor.PID
	// Shards is the number of shard slots: connections dialed (client) or accepted (server).
	Shards int
	// Policy decides the backoff between restarts and when restarts come too often.
	Policy Policy
	// Stopped, if set, is closed when the supervisor stops.
	Stopped chan struct{}

	// Client side: set Client and leave Listen nil. Client.Slot is set per shard.
	Client *ClientShardConfig

	// Server side. Listen opens the pool's one UDP socket and QUIC listener; closeTransport
	// closes the socket, after every connection on it is closed.
	Listen func() (ln *quic.Listener, closeTransport func(), err error)
	// Allow vets the address of an accepted connection; nil allows every address.
	Allow            func(net.Addr) error
	HandshakeTimeout time.Duration
	HoldTimeout      time.Duration
	// StaleAfter is how long a server connection must have been quiet (no stream accepted or
	// handed out) before a new connection from the same address may replace it, and how often one
	// address may replace a connection at most.
	StaleAfter time.Duration
}

// Policy is the restart policy the supervisor applies; quicpool.RestartPolicy implements it.
type Policy interface {
	// Backoff is the delay before retry number attempt (1 for the first).
	Backoff(attempt int) time.Duration
	// Ceiling is the delay used after an escalation or a permanent failure.
	Ceiling() time.Duration
	// Exceeded reports whether the restart times hold more restarts than allowed at now.
	Exceeded(restarts []time.Time, now time.Time) bool
	// Healthy reports whether a connection up for that long resets its slot's backoff.
	Healthy(up time.Duration) bool
}

const (
	// maxRestartLog bounds the restart times the supervisor remembers for the intensity limit.
	maxRestartLog = 1024
	// closeWait bounds how long shutdown waits for shards to stop and connections to close.
	closeWait = 5 * time.Second
)

// errReplaced is the failure of a server shard whose stale connection a reconnecting client
// replaced.
var errReplaced = errors.New("quicpool: connection replaced by a newer one from the same client")

// NewSupervisor returns the producer of a pool's supervisor, which owns the shards. On Start it
// spawns one client shard per slot, or listens and gives each accepted connection a free slot.
//
// A shard that fails first reports to the coordinator (ShardDown), which forgets it and answers
// Retired; only then does the shard report ShardFailed here, so no Take is ever sent to a shard
// that has stopped. A client shard is then replaced by a fresh incarnation (a new actor ID) after
// the policy's backoff; a server shard's slot is free for the next connection. Restarts that
// come too often escalate: the coordinator is told (Get calls fail fast while no connection is
// up) and retries continue at the policy's ceiling.
//
// Shards are top-level actors that the supervisor stops itself, exactly once: hollywood v1.0.5
// stops a parent by poisoning every child again, with no deadline, which never completes for a
// child already stopping.
func NewSupervisor(cfg SupervisorConfig) actor.Producer {
	return func() actor.Receiver {
		return &supervisor{
			cfg:         cfg,
			slots:       make([]*actor.PID, cfg.Shards),
			attempts:    make([]int, cfg.Shards),
			upSince:     make([]time.Time, cfg.Shards),
			peers:       make([]peer, cfg.Shards),
			timers:      make([]*time.Timer, cfg.Shards),
			live:        make(map[string]*actor.PID),
			retiring:    make(map[string]bool),
			lastReplace: make(map[netip.Addr]time.Time),
		}
	}
}

// SpawnSupervisor spawns a supervisor with the pool's standard options.
func SpawnSupervisor(spawn Spawner, cfg SupervisorConfig, id string) *actor.PID {
	return spawn(NewSupervisor(cfg), "quicpool", spawnOpts(cfg.Log, id)...)
}

type supervisor struct {
	cfg    SupervisorConfig
	engine *actor.Engine
	self   *actor.PID
	ctx    context.Context // cancelled when the supervisor stops: ends the listener
	cancel context.CancelFunc

	started    bool
	shutting   bool
	generation int // incarnation counter: every shard gets a fresh ID

	slots    []*actor.PID          // the live shard of each slot, nil when free
	live     map[string]*actor.PID // every shard not yet stopped, by PID ID
	retiring map[string]bool       // replaced server shards finishing their retirement

	// Client restarts.
	attempts  []int         // failed attempts in a row, per slot
	upSince   []time.Time   // when each slot's connection came up, zero while down
	timers    []*time.Timer // pending restarts, per slot
	restarts  []time.Time   // recent restarts of any slot, for the intensity limit
	escalated bool          // restarts exceeded the policy's intensity

	// Server connections.
	peers       []peer                   // who holds each slot
	lastReplace map[netip.Addr]time.Time // when each address last replaced a connection
	refusals    uint64                   // connections refused since start
}

// peer is the client holding a server shard slot, and when its connection last showed life.
type peer struct {
	ip     netip.Addr
	active time.Time
}

// Reports from the supervisor's goroutines and timers.
type (
	restartShard  struct{ slot int }
	shardsStopped struct{ reply chan struct{} }
	listening     struct{ addr net.Addr }
	listenFailed  struct{ err error }
	// connAccepted carries an accepted connection and the channel its closer closes once the
	// connection is closed; the listener closes its transport only after that.
	connAccepted struct {
		conn   *quic.Conn
		closed chan struct{}
	}
)

func (s *supervisor) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		s.engine, s.self = c.Engine(), c.PID()
		s.ctx, s.cancel = context.WithCancel(s.cfg.Ctx)
	case actor.Stopped:
		s.shutting = true
		s.cancel()
		s.stopTimers()
		for _, pid := range s.live {
			s.stopShard(pid)
		}
		if s.cfg.Stopped != nil && !isClosed(s.cfg.Stopped) {
			close(s.cfg.Stopped)
		}
	case messages.Start:
		s.start()
	case messages.Shutdown:
		s.shutdown(m.Reply)
	case messages.ShardHealthy:
		s.shardHealthy(m)
	case messages.ShardActive:
		if s.current(m.Shard, m.Slot) {
			s.peers[m.Slot].active = time.Now()
		}
	case messages.ShardFailed:
		s.shardFailed(m)
	case restartShard:
		if !s.shutting && s.slots[m.slot] == nil {
			s.spawnClient(m.slot)
			s.engine.Send(s.cfg.Coordinator, messages.Restarted{})
		}
	case shardsStopped:
		close(m.reply)
	case listening:
		s.cfg.Log.Info("server pool listening", "addr", m.addr.String())
		s.emit(messages.Event{Kind: messages.EventListening, Slot: -1, Addr: m.addr.String()})
		s.engine.Send(s.cfg.Coordinator, messages.Listening{Addr: m.addr.String()})
	case listenFailed:
		s.cfg.Log.Error("server pool cannot listen", "err", m.err)
		s.emit(messages.Event{Kind: messages.EventListenFailed, Slot: -1, Err: m.err})
		s.engine.Send(s.cfg.Coordinator, messages.PoolError{Err: m.err})
	case connAccepted:
		s.admit(m.conn, m.closed)
	case messages.Refused:
		s.refused(m.Addr, m.Err)
	}
}

func (s *supervisor) start() {
	if s.started || s.shutting {
		return
	}
	s.started = true
	if s.cfg.Listen != nil {
		s.cfg.Go(s.cfg.Guard(s.serve, func(err error) { s.engine.Send(s.self, listenFailed{err: err}) }))
		return
	}
	for slot := range s.slots {
		s.spawnClient(slot)
	}
}

// current reports whether shard is the live incarnation of slot (reports from replaced
// incarnations are stale).
func (s *supervisor) current(shard *actor.PID, slot int) bool {
	return slot >= 0 && slot < len(s.slots) && s.slots[slot] != nil && s.slots[slot].ID == shard.ID
}

// spawnShard spawns a shard as a top-level actor named after the supervisor, with a fresh ID.
func (s *supervisor) spawnShard(p actor.Producer, kind string, slot int) *actor.PID {
	s.generation++
	id := fmt.Sprintf("%s%d.%d", kind, slot, s.generation)
	pid := s.engine.Spawn(p, s.self.ID+"/shard", spawnOpts(s.cfg.Log, id)...)
	s.live[pid.ID] = pid
	return pid
}

// stopShard stops a shard, once.
func (s *supervisor) stopShard(pid *actor.PID) context.Context {
	delete(s.live, pid.ID)
	return s.engine.Poison(pid)
}

func (s *supervisor) spawnClient(slot int) {
	cfg := *s.cfg.Client
	cfg.Runtime, cfg.Slot, cfg.Coordinator, cfg.Supervisor = s.cfg.Runtime, slot, s.cfg.Coordinator, s.self
	s.slots[slot] = s.spawnShard(NewClientShard(cfg), "c", slot)
}

func (s *supervisor) shardHealthy(m messages.ShardHealthy) {
	if !s.current(m.Shard, m.Slot) {
		return
	}
	s.upSince[m.Slot] = time.Now()
	s.emit(messages.Event{Kind: messages.EventShardUp, Slot: m.Slot})
	if s.escalated {
		s.escalated = false
		s.cfg.Log.Info("pool recovered", "slot", m.Slot)
		s.emit(messages.Event{Kind: messages.EventRecovered, Slot: m.Slot})
		s.engine.Send(s.cfg.Coordinator, messages.PoolError{})
	}
}

// shardFailed stops a shard the coordinator has already forgotten and, on a client, schedules
// its replacement.
func (s *supervisor) shardFailed(m messages.ShardFailed) {
	if s.retiring[m.Shard.ID] {
		delete(s.retiring, m.Shard.ID)
		s.stopShard(m.Shard)
		return
	}
	if !s.current(m.Shard, m.Slot) {
		return
	}
	s.slots[m.Slot] = nil
	s.stopShard(m.Shard)
	reason, permanent := Permanent(m.Err)
	s.emit(messages.Event{Kind: messages.EventShardFailed, Slot: m.Slot, Err: m.Err, Permanent: permanent})
	if s.shutting || s.cfg.Client == nil {
		return // a server slot is simply free for the client's next connection
	}
	now := time.Now()
	if up := s.upSince[m.Slot]; !up.IsZero() && s.cfg.Policy.Healthy(now.Sub(up)) {
		s.attempts[m.Slot] = 0
	}
	s.upSince[m.Slot] = time.Time{}
	s.attempts[m.Slot]++
	s.restarts = append(s.restarts, now)
	if len(s.restarts) > maxRestartLog {
		s.restarts = s.restarts[len(s.restarts)-maxRestartLog:]
	}
	if !s.escalated && s.cfg.Policy.Exceeded(s.restarts, now) {
		s.escalate(m.Err)
	}

	delay := s.cfg.Policy.Backoff(s.attempts[m.Slot])
	if permanent || s.escalated {
		delay = s.cfg.Policy.Ceiling()
	}
	if permanent {
		s.cfg.Log.Error("connection failed permanently; retrying at the slowest pace", "slot", m.Slot, "why", reason, "in", delay)
	} else {
		s.cfg.Log.Info("shard restart scheduled", "slot", m.Slot, "attempt", s.attempts[m.Slot], "in", delay, "err", m.Err)
	}
	s.emit(messages.Event{Kind: messages.EventRestartScheduled, Slot: m.Slot, Attempt: s.attempts[m.Slot],
		Delay: delay, Permanent: permanent, Err: m.Err})
	engine, self, slot := s.engine, s.self, m.Slot
	s.timers[slot] = time.AfterFunc(delay, func() { engine.Send(self, restartShard{slot: slot}) })
}

// escalate reports restarts beyond the policy's intensity: Get calls fail fast while no
// connection is up, and retries slow to the policy's ceiling until a connection comes up.
func (s *supervisor) escalate(last error) {
	s.escalated = true
	err := fmt.Errorf("%w: %w", messages.ErrUnavailable, last)
	s.cfg.Log.Error("connections keep failing; retrying at the slowest pace", "restarts", len(s.restarts), "err", last)
	s.emit(messages.Event{Kind: messages.EventEscalated, Slot: -1, Err: err})
	s.engine.Send(s.cfg.Coordinator, messages.PoolError{Err: err})
}

// emit broadcasts a supervision event on the engine's event stream.
func (s *supervisor) emit(ev messages.Event) {
	ev.Pool, ev.Time = s.self, time.Now()
	s.engine.BroadcastEvent(ev)
}

// shutdown stops every shard; reply is closed once they all have, or after closeWait.
func (s *supervisor) shutdown(reply chan struct{}) {
	s.shutting = true
	s.stopTimers()
	clear(s.slots)
	deadline, cancel := context.WithTimeout(context.Background(), closeWait)
	waits := make([]context.Context, 0, len(s.live))
	for _, pid := range s.live {
		delete(s.live, pid.ID)
		waits = append(waits, s.engine.PoisonCtx(deadline, pid))
	}
	engine, self := s.engine, s.self
	s.cfg.Go(func() {
		defer cancel()
		for _, done := range waits {
			<-done.Done()
		}
		engine.Send(self, shardsStopped{reply: reply})
	})
}

func (s *supervisor) stopTimers() {
	for _, t := range s.timers {
		if t != nil {
			t.Stop()
		}
	}
}

// serve (server) listens, retrying with backoff until it can, then accepts connections until
// the supervisor stops or the pool closes. It closes the transport only once every connection it
// accepted has been closed (or after closeWait), so that each one got a CONNECTION_CLOSE.
func (s *supervisor) serve() {
	for attempt := 1; ; attempt++ {
		ln, closeTransport, err := s.cfg.Listen()
		if err != nil {
			s.engine.Send(s.self, listenFailed{err: err})
			select {
			case <-time.After(s.cfg.Policy.Backoff(attempt)):
				continue
			case <-s.ctx.Done():
				return
			}
		}
		attempt = 0
		s.engine.Send(s.self, listening{addr: ln.Addr()})
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

// admit gives an accepted connection a free shard slot, replaces a stale connection of the same
// client, or refuses it.
func (s *supervisor) admit(conn *quic.Conn, closed chan struct{}) {
	addr := conn.RemoteAddr()
	if s.shutting {
		s.closeConn(conn, closed, ConnCodeClosed, "quicpool: pool closed")
		return
	}
	if s.cfg.Allow != nil {
		if err := s.cfg.Allow(addr); err != nil {
			s.refuse(conn, closed, err)
			return
		}
	}
	slot := s.freeSlot()
	if slot < 0 {
		slot = s.replaceStale(addr)
	}
	if slot < 0 {
		s.refuse(conn, closed, fmt.Errorf("%w: all %d shard slots are taken", messages.ErrPoolFull, len(s.slots)))
		return
	}
	cfg := ServerShardConfig{Runtime: s.cfg.Runtime, Slot: slot, Coordinator: s.cfg.Coordinator, Supervisor: s.self,
		Conn: conn, Closed: closed, HandshakeTimeout: s.cfg.HandshakeTimeout, HoldTimeout: s.cfg.HoldTimeout}
	s.slots[slot] = s.spawnShard(NewServerShard(cfg), "s", slot)
	s.peers[slot] = peer{ip: addrIP(addr), active: time.Now()}
	s.cfg.Log.Info("client connected", "slot", slot, "remote", addr.String())
}

func (s *supervisor) freeSlot() int {
	for slot, pid := range s.slots {
		if pid == nil {
			return slot
		}
	}
	return -1
}

// replaceStale frees the slot of a connection from addr's IP that has been quiet for StaleAfter,
// if there is one and the address has not replaced a connection within StaleAfter: a client that
// reconnects while the server still holds its old connection (a NodePass client drops a
// connection without closing it; a restarted client leaves one behind until its idle timeout)
// gets back in, live connections of the same address are never displaced by each other, and no
// other address can displace a client at all. It returns the freed slot or -1.
func (s *supervisor) replaceStale(addr net.Addr) int {
	ip, now, victim, stale := addrIP(addr), time.Now(), -1, s.cfg.StaleAfter
	if last, ok := s.lastReplace[ip]; ok && now.Sub(last) < stale {
		return -1
	}
	for slot, pid := range s.slots {
		if pid != nil && s.peers[slot].ip == ip && now.Sub(s.peers[slot].active) >= stale &&
			(victim < 0 || s.peers[slot].active.Before(s.peers[victim].active)) {
			victim = slot
		}
	}
	if victim < 0 {
		return -1
	}
	old := s.slots[victim]
	s.cfg.Log.Info("client reconnected: replacing its stale connection", "slot", victim, "remote", addr.String(),
		"quiet for", now.Sub(s.peers[victim].active).Round(time.Second))
	s.emit(messages.Event{Kind: messages.EventReplaced, Slot: victim, Addr: addr.String()})
	s.lastReplace[ip] = now
	s.retiring[old.ID] = true
	s.slots[victim] = nil
	s.engine.Send(old, messages.Retire{Err: errReplaced})
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
	s.closeConn(conn, closed, ConnCodeRefused, reason.Error())
}

// closeConn closes a connection in a goroutine (CloseWithError waits for the connection's run
// loop) and then marks it closed for the listener.
func (s *supervisor) closeConn(conn *quic.Conn, closed chan struct{}, code quic.ApplicationErrorCode, reason string) {
	s.cfg.Go(func() {
		defer close(closed)
		_ = conn.CloseWithError(code, reason)
	})
}

// refused counts, reports and logs a refused connection. Log lines thin out under a flood: the
// 1st, 2nd, 4th, 8th... refusal is logged, with the count so far.
func (s *supervisor) refused(addr string, reason error) {
	s.refusals++
	s.emit(messages.Event{Kind: messages.EventRefused, Slot: -1, Addr: addr, Err: reason})
	s.engine.Send(s.cfg.Coordinator, messages.Refused{Addr: addr, Err: reason})
	if s.refusals&(s.refusals-1) == 0 {
		s.cfg.Log.Warn("connection refused", "remote", addr, "reason", reason, "refused so far", s.refusals)
	}
}
