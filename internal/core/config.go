package core

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool/messages"
)

// Config is everything a pool's actors are built from, checked by package quicpool. It is made
// once and passed down by pointer; no actor changes it.
type Config struct {
	// Client selects the client pool: dial Shards connections and open streams on them. A server
	// pool listens and accepts up to Shards connections from one IP address instead, and
	// SlotCount in all.
	Client bool
	// PoolName is the pool's name (WithName), "" if none.
	PoolName string
	// Err, when set, is an invalid configuration: the pool starts nothing and fails every call
	// with it.
	Err error

	MinCap, MaxCap int           // idle streams: the client tunes its capacity between them; a server holds MaxCap
	MinIvl, MaxIvl time.Duration // the client's refill interval, tuned between them
	Shards         int           // connections a client dials, or one client address may hold on a server: min(max(ceil(MaxCap/PerShard), 1), 64)
	PerShard       int           // the most idle streams a client keeps on one connection (a server's share is MaxCap over the connections up)

	Policy Policy
	// HandshakeTimeout bounds a stream's handshake: the server's wait for the handshake byte and
	// for the write of the ID, the client's wait for the ID.
	HandshakeTimeout time.Duration
	// HoldTimeout bounds how long a full server holds a handshaken stream before refusing it.
	HoldTimeout time.Duration
	// PeerClosedGrace is how long a stream the peer closed before this side took it stays
	// reachable by ID; zero means the actors' default (10s).
	PeerClosedGrace time.Duration

	// TLS and QUIC are the configurations of every connection, protocol and limits already set.
	TLS  *tls.Config
	QUIC *quic.Config
	// Resolve (client) returns the server's address; it is asked anew before every dial.
	Resolve func() (string, error)
	// LocalAddr (client), if set, is the address to dial from.
	LocalAddr *net.UDPAddr
	// ListenAddr (server) is the address to listen on.
	ListenAddr string
	// ResetKey (server), if set, makes the listener answer packets of connections it does not
	// know (those of a previous process) with a stateless reset.
	ResetKey *quic.StatelessResetKey
	// TokenKey (server), if set, protects the address-validation tokens the listener hands out,
	// so that a client's token outlives the server's process; nil picks a key per process.
	TokenKey *quic.TokenGeneratorKey
	// VerifyClient (server), if set, vets the certificate chain a client presents during the TLS
	// handshake (none is an empty chain); a client it rejects is refused and counted.
	VerifyClient func(chain []*x509.Certificate) error
	// Allow (server) vets the address of a connection before its handshake; nil allows every
	// address.
	Allow func(net.Addr) error

	// Ctx is cancelled when the pool closes; every goroutine of the pool watches it.
	Ctx context.Context
	// Log receives the pool's events. Never nil.
	Log *slog.Logger
	// Go runs f in a goroutine that Pool.Close waits for.
	Go func(f func())
	// Name makes the actor IDs of one pool unique within a shared engine.
	Name string

	// Takes carries the facade's Gets straight to the coordinator's goroutine; its buffer bounds
	// how many wait there unhandled.
	Takes chan *Take
	// Mail carries everything else told to the coordinator (Tell) to its goroutine; MailClosed is
	// closed when that goroutine has returned. actors.Spawn makes both.
	Mail       chan any
	MailClosed chan struct{}
	// Final receives the coordinator's last Stats as it stops; Stopped is closed right after.
	Final   *messages.Stats
	Stopped chan struct{}
	// SupervisorStopped is closed when the supervisor has stopped.
	SupervisorStopped chan struct{}
}

// Liveness: how a pool notices that a peer stopped answering, and how fast a client dials again.
const (
	// ProbeInterval is how often a pool makes sure it hears from each peer: an idle connection
	// sends a keep-alive PING this often (the peer acknowledges it), and each shard samples its
	// connection's received-packet counter this often.
	ProbeInterval = 250 * time.Millisecond
	// RedialInterval is how often a client starts a fresh dial attempt while a slot has no
	// connection that answers, during the first FastRedialWindow of the outage. An attempt that
	// finds no server costs a few Initial packets.
	RedialInterval = 500 * time.Millisecond
	// FastRedialWindow is how long after an outage begins a client keeps dialing every
	// RedialInterval; after it, attempts follow the restart policy's backoff.
	FastRedialWindow = 20 * time.Second
)

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

// Spawner spawns an actor: actor.Engine.Spawn for a top-level actor, actor.Context.SpawnChild
// for a child of the calling actor.
type Spawner func(p actor.Producer, name string, opts ...actor.OptFunc) *actor.PID

// The messages only the Pool facade sends.
type (
	// Start starts the pool: the coordinator's refill cycle, the supervisor's dials or listener.
	Start struct{}
	// Shutdown tells the supervisor to stop every shard and the listener; Reply is closed when
	// they have all stopped.
	Shutdown struct{ Reply chan struct{} }
	// Take is a Get the facade sends on Takes. It is sent by pointer, and the facade reuses it
	// once the Get is answered: the coordinator copies it and keeps no reference.
	Take struct{ Get messages.Get }
	// Cause asks why the pool cannot serve now (Stats.Err, without the rest of a snapshot), for
	// a call that timed out.
	Cause struct{ Reply chan error }
)

// Tell hands m to the coordinator's goroutine. The pool's actors, goroutines and timers and the
// Pool facade all tell it this way; what is sent to the coordinator's actor (an embedder's
// requests) is told once hollywood delivers it, so a message told directly may overtake one sent
// to the actor before it. The coordinator handles what is told in the order it was told. Telling
// waits while the coordinator is cap(Mail) messages behind; once it has stopped, m is dropped, as
// hollywood drops what is sent to a stopped actor.
func (c *Config) Tell(m any) { c.TellWithin(m, nil) }

// TellWithin is Tell for a caller with a bound of its own: it gives up waiting for room once done
// is closed (a nil done never is), so that a coordinator far behind does not hold the caller past
// its bound.
func (c *Config) TellWithin(m any, done <-chan struct{}) {
	select {
	case c.Mail <- m:
	case <-done:
	case <-c.MailClosed:
	}
}

// SlotCount is the number of connections a pool keeps: the Shards a client dials; twice as many
// on a server, which accepts at most Shards from one IP address.
func (c *Config) SlotCount() int {
	if c.Client {
		return c.Shards
	}
	return 2 * c.Shards
}

// IsClosed reports whether ch, a channel that is only ever closed, is closed. A receive from an
// open channel in a select with a default takes no lock, so the check is cheap on a hot path.
func IsClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
