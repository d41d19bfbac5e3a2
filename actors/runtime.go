package actors

import (
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quicpool/quicpool/internal/core"
	"github.com/quicpool/quicpool/messages"
)

// runtime is what every actor of one pool shares: the pool's configuration and the PIDs of its
// two long-lived actors. It is written once, while the pool is spawned, and only read after.
type runtime struct {
	*core.Config
	coordinator *actor.PID
	supervisor  *actor.PID
	othersWait  time.Duration // tests only: replaces othersWait when positive
	dialGap     time.Duration // tests only: replaces dialGap when positive
	oneAttempt  bool          // tests only: a client shard makes one dial attempt, no fast redials
	batchWait   time.Duration // tests only: replaces replaceDelay when positive
}

// newRuntime is the runtime of a pool built from cfg, and makes the coordinator's mailbox
// (core.Config.Mail).
func newRuntime(cfg *core.Config) *runtime {
	cfg.Mail, cfg.MailClosed = make(chan any, coordinatorMail), make(chan struct{})
	return &runtime{Config: cfg}
}

// replaceDelay is the longest a client's replacement waits for the rest of its batch (coalesce).
func (rt *runtime) replaceDelay() time.Duration {
	if rt.batchWait > 0 {
		return rt.batchWait
	}
	return replaceDelay
}

// peerClosedGrace is how long a peer-closed stream stays reachable by ID.
func (rt *runtime) peerClosedGrace() time.Duration {
	if rt.PeerClosedGrace > 0 {
		return rt.PeerClosedGrace
	}
	return defaultPeerClosedGrace
}

// guard wraps a goroutine body so that a panic in it is recovered, logged with its stack, and
// reported with fail: the goroutine's owner treats it as a failure of its own.
func (rt *runtime) guard(f func(), fail func(error)) func() {
	return func() {
		defer func() {
			if v := recover(); v != nil {
				err := fmt.Errorf("%w in goroutine: %v", core.ErrPanic, v)
				rt.Log.Error("goroutine panic recovered", "err", err, "stack", string(debug.Stack()))
				fail(err)
			}
		}()
		f()
	}
}

// emit broadcasts ev on the engine's event stream, on behalf of the pool.
func (rt *runtime) emit(e *actor.Engine, ev messages.Event) {
	ev.Pool, ev.Time = rt.coordinator, time.Now()
	e.BroadcastEvent(ev)
}

// spawn spawns one of the pool's actors with the options every one of them gets. Each runs
// inside a sealed receiver rather than behind hollywood middleware: v1.0.5 builds the middleware
// chain anew for every message (three allocations and two stack frames a message).
func (rt *runtime) spawn(spawn core.Spawner, p actor.Producer, id string, inbox int) *actor.PID {
	produce := func() actor.Receiver { return &sealed{rt: rt, actor: p()} }
	return spawn(produce, "quicpool", actor.WithID(id+"."+rt.Name),
		actor.WithInboxSize(inbox),
		// sealed recovers every panic, so hollywood's own restarts never happen; a positive
		// limit keeps v1.0.5 away from its nil-cancel crash should one slip through.
		actor.WithMaxRestarts(1<<30),
		actor.WithRestartDelay(0))
}

// Inbox sizes. A hollywood inbox is a ring buffer that doubles when full and never shrinks; its
// initial size is allocated up front (24 bytes a message). The coordinator's inbox carries only
// what an embedder sends (the pool's own messages reach its goroutine by channel); the supervisor
// and the shards take a few messages per connection.
const (
	coordinatorInbox = 64
	smallInbox       = 16
	// coordinatorMail is how many told messages the coordinator's goroutine may have waiting for
	// it; beyond that, Tell waits for room.
	coordinatorMail = 256
)

// panicHandler is implemented by actors that turn a recovered panic into a failure of their own
// (a shard reports it to its supervisor, which replaces the shard).
type panicHandler interface {
	onPanic(err error)
}

// sealed is the receiver every pool actor runs in. It lets only hollywood itself start and stop
// the actor: actor.Started and actor.Stopped are types anyone can send, so a Started after the
// first, or a Stopped while the actor is still registered (hollywood unregisters an actor before
// it delivers the real Stopped), is dropped. And it recovers a panic in the actor's Receive, logs
// it with its stack, and hands it to the actor's onPanic if it has one; otherwise the actor
// carries on with the next message.
type sealed struct {
	rt      *runtime
	actor   actor.Receiver
	started bool
}

func (s *sealed) Receive(c *actor.Context) {
	switch c.Message().(type) {
	case actor.Initialized:
		if s.started {
			return
		}
	case actor.Started:
		if s.started {
			return
		}
		s.started = true
	case actor.Stopped:
		if registered(c.Engine(), c.PID()) {
			return
		}
	}
	defer s.recoverPanic(c)
	s.actor.Receive(c)
}

// recoverPanic is sealed's deferred recovery.
func (s *sealed) recoverPanic(c *actor.Context) {
	v := recover()
	if v == nil {
		return
	}
	err := fmt.Errorf("%w in %s handling %T: %v", core.ErrPanic, c.PID().GetID(), c.Message(), v)
	s.rt.Log.Error("actor panic recovered", "err", err, "stack", string(debug.Stack()))
	if h, ok := s.actor.(panicHandler); ok {
		h.onPanic(err)
	}
}

func registered(e *actor.Engine, pid *actor.PID) bool {
	i := strings.LastIndex(pid.ID, "/")
	return i >= 0 && e.Registry.GetPID(pid.ID[:i], pid.ID[i+1:]) != nil
}
