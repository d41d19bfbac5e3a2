package actors

import (
	"context"
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
	// Stopped, if set, is closed when the supervisor stops, after all its shards have.
	Stopped chan struct{}

	// Client side: set Client and leave Listen nil. Client.Slot is set per shard.
	Client *ClientShardConfig

	// Server side. Listen opens the pool's one UDP socket and QUIC listener; closeTransport
	// closes the socket once every connection on it is closed.
	Listen func() (ln *quic.Listener, closeTransport func(), err error)
	// Allow vets the address of an accepted connection; nil allows every address.
	Allow            func(net.Addr) error
	HandshakeTimeout time.Duration
	HoldTimeout      time.Duration
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

// maxRestartLog bounds the restart times the supervisor remembers for the intensity limit.
const maxRestartLog = 1024

// NewSupervisor returns the producer of a pool's supervisor: the parent of every shard. On Start
// it dials one client shard per slot, or listens and gives each accepted connection a free slot.
// A client shard that fails is stopped and replaced by a fresh incarnation (a new actor ID)
// after the policy's backoff; a server shard that fails frees its slot for the client's next
// connection. Restarts that come too often escalate: the coordinator is told (Get calls then fail
// fast while no connection is up) and retries continue at the policy's ceiling.
func NewSupervisor(cfg SupervisorConfig) actor.Producer {
	return func() actor.Receiver {
		return &supervisor{
			cfg:        cfg,
			slots:      make([]*actor.PID, cfg.Shards),
			attempts:   make([]int, cfg.Shards),
			upSince:    make([]time.Time, cfg.Shards),
			peers:      make([]peer, cfg.Shards),
			timers:     make([]*time.Timer, cfg.Shards),
			dying:      make(map[string]context.Context),
			shardsDone: make(chan struct{}),
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
	slots      []*actor.PID               // live shard of each slot, nil when free
	attempts   []int                      // failed attempts in a row, per slot (client)
	peers      []peer                     // server: who holds each slot
	upSince    []time.Time                // when each slot's connection came up, zero while down
	restarts   []time.Time                // recent restarts of any slot, for the intensity limit
	refusals   uint64                     // connections refused since start
	escalated  bool                       // restarts exceeded the policy's intensity
	timers     []*time.Timer              // pending restarts, per slot (client)
	dying      map[string]context.Context // shards poisoned once, by PID ID, until stopped
	generation int                        // incarnation counter: every shard gets a fresh ID

	shardsDone       chan struct{} // closed once every shard has stopped; then the transport closes
	shardsDoneClosed bool
}

// peer is the client holding a server shard slot, and when that connection last showed life.
type peer struct {
	ip     netip.Addr
	active time.Time
}

// Reports from the supervisor's goroutines and timers.
type (
	restartShard  struct{ slot int }
	shardStopped  struct{ id string }
	shardsStopped struct{ reply chan struct{} }
	listening     struct{ addr net.Addr }
	listenFailed  struct{ err error }
	connAccepted  struct{ conn *quic.Conn }
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
		s.closeShardsDone()
		if s.cfg.Stopped != nil && !isClosed(s.cfg.Stopped) {
			close(s.cfg.Stopped)
		}
	case messages.Start:
		s.start(c)
	case messages.Shutdown:
		s.shutdown(c, m.Reply)
	case messages.ShardHealthy:
		s.shardHealthy(m)
	case messages.ShardActive:
		if s.current(m.Shard, m.Slot) {
			s.peers[m.Slot].active = time.Now()
		}
	case messages.ShardFailed:
		s.shardFailed(c, m)
	case restartShard:
		if !s.shutting && s.slots[m.slot] == nil {
			s.spawnClient(c, m.slot)
			c.Send(s.cfg.Coordinator, messages.Restarted{})
		}
	case shardStopped:
		delete(s.dying, m.id)
	case shardsStopped:
		s.closeShardsDone()
		close(m.reply)
	case listening:
		s.cfg.Log.Info("server pool listening", "addr", m.addr.String())
		s.emit(messages.Event{Kind: messages.EventListening, Slot: -1, Addr: m.addr.String()})
		c.Send(s.cfg.Coordinator, messages.Listening{Addr: m.addr.String()})
	case listenFailed:
		s.cfg.Log.Error("server pool cannot listen", "err", m.err)
		s.emit(messages.Event{Kind: messages.EventListenFailed, Slot: -1, Err: m.err})
		c.Send(s.cfg.Coordinator, messages.PoolError{Err: m.err})
	case connAccepted:
		s.admit(c, m.conn)
	case messages.Refused:
		s.refused(m.Addr, m.Err)
	}
}

func (s *supervisor) start(c *actor.Context) {
	if s.started || s.shutting {
		return
	}
	s.started = true
	if s.cfg.Listen != nil {
		s.cfg.Go(s.cfg.Guard(s.serve, func(err error) { s.engine.Send(s.self, listenFailed{err: err}) }))
		return
	}
	for slot := range s.slots {
		s.spawnClient(c, slot)
	}
}

// current reports whether shard is the live incarnation of slot (reports from replaced
// incarnations are stale).
func (s *supervisor) current(shard *actor.PID, slot int) bool {
	return slot >= 0 && slot < len(s.slots) && s.slots[slot] != nil && s.slots[slot].ID == shard.ID
}

func (s *supervisor) nextID(kind string, slot int) string {
	s.generation++
	return fmt.Sprintf("%s%d.%d", kind, slot, s.generation)
}

func (s *supervisor) spawnClient(c *actor.Context, slot int) {
	cfg := *s.cfg.Client
	cfg.Runtime, cfg.Slot, cfg.Coordinator = s.cfg.Runtime, slot, s.cfg.Coordinator
	s.slots[slot] = c.SpawnChild(NewClientShard(cfg), "shard", spawnOpts(s.cfg.Log, s.nextID("c", slot))...)
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

func (s *supervisor) shardFailed(c *actor.Context, m messages.ShardFailed) {
	if !s.current(m.Shard, m.Slot) {
		return
	}
	s.slots[m.Slot] = nil
	s.poison(m.Shard)
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

// poison stops a shard exactly once (hollywood never completes a second poison of the same
// actor) and remembers it until it has stopped.
func (s *supervisor) poison(shard *actor.PID) {
	if _, ok := s.dying[shard.ID]; ok {
		return
	}
	done := s.engine.Poison(shard)
	s.dying[shard.ID] = done
	engine, self, id := s.engine, s.self, shard.ID
	s.cfg.Go(func() {
		<-done.Done()
		engine.Send(self, shardStopped{id: id})
	})
}

// shutdown stops every shard; reply is closed once they all have.
func (s *supervisor) shutdown(c *actor.Context, reply chan struct{}) {
	s.shutting = true
	s.stopTimers()
	for slot, pid := range s.slots {
		if pid != nil {
			s.poison(pid)
			s.slots[slot] = nil
		}
	}
	waits := make([]context.Context, 0, len(s.dying))
	for _, done := range s.dying {
		waits = append(waits, done)
	}
	engine, self := s.engine, s.self
	s.cfg.Go(func() {
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

func (s *supervisor) closeShardsDone() {
	if !s.shardsDoneClosed {
		s.shardsDoneClosed = true
		close(s.shardsDone)
	}
}

// serve (server) listens, retrying with backoff until it can, then accepts connections until
// the supervisor stops. It closes the transport only after every shard has stopped, so that
// each connection was closed with a CONNECTION_CLOSE first.
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
		for {
			conn, err := ln.Accept(s.ctx)
			if err != nil {
				break
			}
			s.engine.Send(s.self, connAccepted{conn: conn})
		}
		_ = ln.Close()
		if s.ctx.Err() != nil {
			<-s.shardsDone
			closeTransport()
			return
		}
		closeTransport() // the socket failed under us: listen again
	}
}

func (s *supervisor) freeSlot() int {
	for slot, pid := range s.slots {
		if pid == nil {
			return slot
		}
	}
	return -1
}

// quietestOf returns the slot of the connection from addr's IP that accepted a stream least
// recently, or -1 if that IP holds no slot. A client that reconnects while the server still
// holds its old connection (a NodePass client drops a connection without closing it; a
// restarted client leaves one behind until its idle timeout) is let in at once, and no other
// address can ever displace it.
func (s *supervisor) quietestOf(addr net.Addr) int {
	ip, victim := addrIP(addr), -1
	for slot, pid := range s.slots {
		if pid != nil && s.peers[slot].ip == ip && (victim < 0 || s.peers[slot].active.Before(s.peers[victim].active)) {
			victim = slot
		}
	}
	return victim
}

func addrIP(addr net.Addr) netip.Addr {
	if udp, ok := addr.(*net.UDPAddr); ok {
		ip, _ := netip.AddrFromSlice(udp.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
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

// admit gives an accepted connection a free shard slot, or refuses it.
func (s *supervisor) admit(c *actor.Context, conn *quic.Conn) {
	refuse := func(reason error) {
		s.refused(conn.RemoteAddr().String(), reason)
		_ = conn.CloseWithError(ConnCodeRefused, reason.Error())
	}
	if s.shutting {
		_ = conn.CloseWithError(ConnCodeClosed, "quicpool: pool closed")
		return
	}
	if s.cfg.Allow != nil {
		if err := s.cfg.Allow(conn.RemoteAddr()); err != nil {
			refuse(err)
			return
		}
	}
	slot := s.freeSlot()
	if slot < 0 {
		if slot = s.quietestOf(conn.RemoteAddr()); slot >= 0 {
			s.cfg.Log.Info("client reconnected: replacing its quietest connection", "slot", slot, "remote", conn.RemoteAddr().String())
			s.emit(messages.Event{Kind: messages.EventReplaced, Slot: slot, Addr: conn.RemoteAddr().String()})
			s.poison(s.slots[slot])
			s.slots[slot] = nil
		}
	}
	if slot >= 0 {
		cfg := ServerShardConfig{Runtime: s.cfg.Runtime, Slot: slot, Coordinator: s.cfg.Coordinator,
			Conn: conn, HandshakeTimeout: s.cfg.HandshakeTimeout, HoldTimeout: s.cfg.HoldTimeout}
		s.slots[slot] = c.SpawnChild(NewServerShard(cfg), "shard", spawnOpts(s.cfg.Log, s.nextID("s", slot))...)
		s.peers[slot] = peer{ip: addrIP(conn.RemoteAddr()), active: time.Now()}
		s.cfg.Log.Info("client connected", "slot", slot, "remote", conn.RemoteAddr().String())
		return
	}
	refuse(fmt.Errorf("%w: all %d shard slots are taken", messages.ErrPoolFull, len(s.slots)))
}
