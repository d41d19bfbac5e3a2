package actors

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool/internal/wire"
)

// shard is what both kinds of shard actor share: their identity, their lifetime (ctx is
// cancelled when the actor stops, which ends its goroutines and closes its connection), and the
// report of their failure to the supervisor.
type shard struct {
	rt     *runtime
	slot   int
	engine *actor.Engine
	self   *actor.PID
	ctx    context.Context
	cancel context.CancelCauseFunc
	upAt   time.Time // when the connection came up (and was announced to the coordinator); zero until then
	failed bool
	drains chan []*quic.Stream // client: the streams to wait for once the connection drains (drain.go)

	// closeWith, if set, is how the connection is closed when the shard stops; it travels to the
	// goroutine that closes the connection as the cause of ctx.
	closeWith *closeCause
}

// closeCause is how a shard's connection is to be closed, carried as its context's cause.
type closeCause struct {
	code   quic.ApplicationErrorCode
	reason string
}

func (c *closeCause) Error() string { return c.reason }

// started binds the shard to its actor; called on actor.Started.
func (s *shard) started(c *actor.Context) {
	s.engine, s.self = c.Engine(), c.PID()
	s.ctx, s.cancel = context.WithCancelCause(s.rt.Ctx)
	s.drains = make(chan []*quic.Stream, 1)
}

// stopped ends the shard's goroutines and, if it announced its connection to the coordinator,
// tells the coordinator it is gone. The supervisor tells the coordinator too when it stops a
// shard, but a shard it stopped while it was connecting may have announced itself after that:
// its own report, sent after its announcement, settles it.
func (s *shard) stopped() {
	if s.closeWith != nil {
		s.cancel(s.closeWith)
	} else {
		s.cancel(nil)
	}
	if !s.upAt.IsZero() {
		s.rt.Tell(shardDown{shard: s.self})
	}
}

// failClosing fails the shard and has its connection closed with code and err as the reason.
func (s *shard) failClosing(code quic.ApplicationErrorCode, err error) {
	s.closeWith = &closeCause{code: code, reason: err.Error()}
	s.fail(err)
}

// closeConn closes conn once ctx is done: with the code and reason of the shard's failure if it
// set them (the cause of ctx), otherwise (the pool closing, say) with ConnCodeClosed and reason.
func (s *shard) closeConn(ctx context.Context, conn *quic.Conn, reason string) {
	code := wire.ConnCodeClosed
	if cc, ok := errors.AsType[*closeCause](context.Cause(ctx)); ok {
		code, reason = cc.code, cc.reason
	}
	_ = conn.CloseWithError(code, reason)
}

// lost reports a failure of one of the shard's goroutines to the shard.
func (s *shard) lost(err error) { s.engine.Send(s.self, connLost{err: err}) }

// onPanic turns a panic in Receive into the shard's failure.
func (s *shard) onPanic(err error) { s.fail(err) }

// fail reports the shard's failure to the supervisor, once.
func (s *shard) fail(err error) {
	if s.failed {
		return
	}
	s.failed = true
	var upFor time.Duration
	if !s.upAt.IsZero() {
		upFor = time.Since(s.upAt)
	}
	level := slog.LevelWarn
	if !s.rt.Client {
		level = slog.LevelInfo // a client going away is routine for a server
	}
	s.rt.Log.Log(context.Background(), level, "connection ended", "slot", s.slot, "err", err, "up for", upFor.Round(time.Millisecond))
	s.engine.Send(s.rt.supervisor, shardFailed{shard: s.self, slot: s.slot, err: err, upFor: upFor})
}
