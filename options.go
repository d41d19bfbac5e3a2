package quicpool

import (
	"log/slog"
	"time"

	"github.com/anthdm/hollywood/actor"
)

// Option adjusts a pool beyond the arguments NodePass's constructors take. Options are passed
// after those arguments, so a call written for NodePass compiles unchanged.
type Option func(*options)

type options struct {
	engine           *actor.Engine
	log              *slog.Logger
	restart          RestartPolicy
	handshakeTimeout time.Duration
}

// WithEngine runs the pool's actors on an existing hollywood engine instead of one of its own,
// so that actors of the embedding system can send the pool messages (see Pool.Coordinator and
// package messages). A nil engine is ignored.
func WithEngine(e *actor.Engine) Option {
	return func(o *options) {
		if e != nil {
			o.engine = e
		}
	}
}

// WithLogger sends the pool's events (connections, failures, restarts, refused peers) to l.
// Without it the pool logs nothing.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// WithRestartPolicy sets how the pool retries a failed connection or listen.
func WithRestartPolicy(p RestartPolicy) Option {
	return func(o *options) { o.restart = p }
}

// WithHandshakeTimeout bounds the stream handshake: how long a server waits for a new stream's
// first byte, and how long a client waits for the stream's ID. Zero or negative: 10s.
func WithHandshakeTimeout(d time.Duration) Option {
	return func(o *options) { o.handshakeTimeout = d }
}

func buildOptions(opts []Option) options {
	o := options{log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	if o.handshakeTimeout <= 0 {
		o.handshakeTimeout = defaultHandshakeTimeout
	}
	return o
}
