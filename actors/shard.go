package actors

import (
	"context"
	"log/slog"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quicpool/quicpool/messages"
)

// shard is what both kinds of shard share: their identity, their idle streams, and the path from
// a failure to their replacement:
//
//	fail: discard the idle streams, tell the coordinator (ShardDown)
//	coordinator: forget the shard, answer Retired (after every Take it sent the shard)
//	Retired: tell the supervisor (ShardFailed), which stops the shard and replaces it
type shard struct {
	Runtime
	slot        int
	coordinator *actor.PID
	supervisor  *actor.PID
	engine      *actor.Engine
	self        *actor.PID
	ctx         context.Context // cancelled when the shard stops: ends its goroutines
	cancel      context.CancelFunc
	idle        idleStreams
	failed      error     // why the shard failed, nil while healthy
	active      time.Time // when the shard last told the supervisor it was active (server)
}

// connLost reports that the shard's connection died, or that one of its goroutines failed.
type connLost struct{ err error }

func (s *shard) started(c *actor.Context) {
	s.engine, s.self = c.Engine(), c.PID()
	s.ctx, s.cancel = context.WithCancel(s.Ctx)
	s.idle.start(c, s.coordinator)
}

// receive handles the messages both kinds of shard treat alike; it reports whether it did.
func (s *shard) receive(msg any) bool {
	switch m := msg.(type) {
	case messages.Take:
		if s.idle.take(m) {
			s.touch()
		}
	case messages.Discard:
		s.idle.discardAndReport(m.IDs)
	case peerStopped:
		s.idle.peerStopped(m)
	case connLost:
		s.fail(m.err, slog.LevelWarn, "connection lost")
	case messages.Retire:
		s.fail(m.Err, slog.LevelInfo, "connection retired")
	case messages.Retired:
		s.engine.Send(s.supervisor, messages.ShardFailed{Shard: s.self, Slot: s.slot, Err: s.failed})
	default:
		return false
	}
	return true
}

// fail discards the idle streams and tells the coordinator they are gone; its answer, Retired,
// leads to the shard's replacement.
func (s *shard) fail(err error, level slog.Level, msg string) {
	if s.failed != nil {
		return
	}
	s.failed = err
	ids := s.idle.discard(nil)
	s.Log.Log(context.Background(), level, msg, "slot", s.slot, "err", err, "discarded", len(ids))
	s.engine.Send(s.coordinator, messages.ShardDown{Shard: s.self, IDs: ids, Err: err})
}

// lost reports a failure of one of the shard's goroutines to the shard.
func (s *shard) lost(err error) { s.engine.Send(s.self, connLost{err: err}) }

// onPanic turns a panic in the shard's Receive into its failure.
func (s *shard) onPanic(_ *actor.Context, err error) { s.fail(err, slog.LevelError, "shard panicked") }

// touch tells the supervisor, at most once a second, that the shard's connection is in use.
func (s *shard) touch() {
	if now := time.Now(); now.Sub(s.active) >= time.Second {
		s.active = now
		s.engine.Send(s.supervisor, messages.ShardActive{Shard: s.self, Slot: s.slot})
	}
}

// stop ends the shard's goroutines, which close its connection and with it the idle streams,
// and reports those if the coordinator does not know yet.
func (s *shard) stop() {
	if s.cancel != nil {
		s.cancel()
	}
	if ids := s.idle.forget(); s.failed == nil {
		s.engine.Send(s.coordinator, messages.ShardDown{Shard: s.self, IDs: ids})
	}
}
