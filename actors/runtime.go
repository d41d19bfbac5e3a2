// Package actors holds the quicpool actors: one coordinator per pool, one supervisor that owns
// the shards, and one shard per QUIC connection (client_shard.go, server_shard.go).
//
// Actors own their state and never block in Receive: dialing, accepting, opening and handshaking
// streams run in goroutines (Runtime.Go) that report back by message. A panic in Receive is
// recovered by the middleware in this file and reported as a failure; it never reaches
// hollywood's restart logic.
package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/anthdm/hollywood/actor"
)

// ErrPanic wraps the value of a panic recovered in an actor or a pool goroutine.
var ErrPanic = errors.New("quicpool: panic")

// Runtime is what all actors of one pool share.
type Runtime struct {
	// Ctx is cancelled when the pool closes; every goroutine of the pool watches it.
	Ctx context.Context
	// Log receives the pool's events. Never nil.
	Log *slog.Logger
	// Go runs f in a goroutine that Pool.Close waits for.
	Go func(f func())
}

// Guard wraps a goroutine body so that a panic in it is recovered, logged with its stack, and
// reported with fail, so that the goroutine's owner treats it as a failure of its own.
func (rt Runtime) Guard(f func(), fail func(error)) func() {
	return func() {
		defer func() {
			if v := recover(); v != nil {
				err := fmt.Errorf("%w in goroutine: %v", ErrPanic, v)
				rt.Log.Error("goroutine panic recovered", "err", err, "stack", string(debug.Stack()))
				fail(err)
			}
		}()
		f()
	}
}

// panicHandler is implemented by actors that turn a recovered panic into a failure of their own
// (a shard reports it to its supervisor, which replaces the shard).
type panicHandler interface {
	onPanic(c *actor.Context, err error)
}

// Recover returns the middleware every pool actor is spawned with. It recovers a panic in Receive,
// logs it with its stack, and hands it to the actor's onPanic if it has one; otherwise the actor
// carries on with the next message.
func Recover(log *slog.Logger) actor.MiddlewareFunc {
	return func(next actor.ReceiveFunc) actor.ReceiveFunc {
		return func(c *actor.Context) {
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				err := fmt.Errorf("%w in %s handling %T: %v", ErrPanic, c.PID().GetID(), c.Message(), v)
				log.Error("actor panic recovered", "pid", c.PID().GetID(), "err", err, "stack", string(debug.Stack()))
				if h, ok := c.Receiver().(panicHandler); ok {
					h.onPanic(c, err)
				}
			}()
			next(c)
		}
	}
}

// spawnOpts are the options every pool actor is spawned with.
func spawnOpts(log *slog.Logger, id string) []actor.OptFunc {
	return []actor.OptFunc{
		actor.WithID(id),
		actor.WithMiddleware(Recover(log)),
		// Recover handles every panic, so hollywood's own restarts never happen; a positive
		// limit keeps v1.0.5 away from its nil-cancel crash should one slip through.
		actor.WithMaxRestarts(1 << 30),
		actor.WithRestartDelay(0),
	}
}
