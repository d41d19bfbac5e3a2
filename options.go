package quicpool

import (
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/anthdm/hollywood/actor"
)

// Option adjusts a pool beyond the arguments NodePass's constructors take. Options are passed
// after those arguments, so a call written for NodePass compiles unchanged.
type Option func(*options)

type options struct {
	err              error // the first invalid option
	allowed          []string
	localAddr        *net.UDPAddr
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

// WithAllowedClients restricts a server pool to clients whose address is one of the given IPs or
// within one of the given CIDR prefixes ("10.0.0.0/8", "2001:db8::/32"), in addition to the
// clientIP argument when that is set. Other connections are refused before the TLS handshake,
// counted and logged. An entry that is neither an IP nor a prefix makes the pool's calls fail
// with ErrInvalidConfig.
func WithAllowedClients(addrs ...string) Option {
	return func(o *options) { o.allowed = append(o.allowed, addrs...) }
}

// WithLocalAddr makes a client pool dial from the given local address ("127.0.0.2:0", or an
// interface's IP with port 0). An unparsable address makes the pool's calls fail with
// ErrInvalidConfig.
func WithLocalAddr(addr string) Option {
	return func(o *options) {
		udp, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			o.fail(fmt.Errorf("%w: local address %q: %w", ErrInvalidConfig, addr, err))
			return
		}
		o.localAddr = udp
	}
}

func (o *options) fail(err error) {
	if o.err == nil {
		o.err = err
	}
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
