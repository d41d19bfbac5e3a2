package quicpool

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool/actors"
	"github.com/quicpool/quicpool/messages"
)

const (
	// closeDeadline bounds each step of Close that waits for actors to stop.
	closeDeadline = 5 * time.Second
	// maxQueuedGets bounds the Get requests of one pool that are sent but not yet handled by its
	// coordinator; callers beyond it wait (within their timeout) before sending.
	maxQueuedGets = 4096
)

// Pool is a pool of ready QUIC streams between two hosts: a client pool dials the server and
// keeps streams open ahead of need; a server pool accepts them and labels each with an ID. Take a
// stream with IncomingGet (any idle stream and its ID) or OutgoingGet (the stream with an ID the
// application passed across its own control channel); both work on both kinds of pool.
//
// A Pool is a facade over a small actor system (see package actors): every method sends a message
// to the pool's coordinator and waits for the answer, bounded by the caller's timeout. All methods
// are safe for concurrent use.
type Pool struct {
	client      bool
	log         *slog.Logger
	engine      *actor.Engine
	coordinator *actor.PID
	supervisor  *actor.PID

	ctx    context.Context // the pool's lifetime: cancelled when Close begins
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the pool starts

	admission chan struct{} // tokens of Get requests not yet handled by the coordinator
	started   chan struct{} // one-slot token: the first manager call takes it
	closing   chan struct{} // one-slot token: the first Close call takes it
	done      chan struct{} // closed when Close begins
	closed    chan struct{} // closed when Close has finished
}

// NewClientPool creates a client pool, as NodePass's quic.NewClientPool does. It keeps between
// minCap and maxCap idle streams (the capacity is tuned between them by use), refilling every
// minIvl..maxIvl (also tuned) and at once whenever a stream is taken. It dials
// min(max(ceil(maxCap/128),1),64) QUIC connections to the address addrResolver returns (asked
// anew for every dial). tlsCode is "0" (encrypted, not verified), "1" (self-signed server:
// compare its fingerprint through StreamConn.ConnectionState) or "2" (verify the certificate
// chain against hostname).
//
// Arguments <= 0 take the defaults: 1 stream, 1s interval, 10s keep-alive; min > max swaps. An
// invalid argument does not panic: the pool's calls fail with an error wrapping
// ErrInvalidConfig. Nothing runs until ClientManager is called.
func NewClientPool(minCap, maxCap int, minIvl, maxIvl, keepAlive time.Duration, tlsCode, hostname string,
	addrResolver func() (string, error), opts ...Option) *Pool {
	o := buildOptions(opts)
	minCap, maxCap = normalize(minCap, maxCap, defaultMinCap, defaultMaxCap)
	minIvl, maxIvl = normalize(minIvl, maxIvl, defaultInterval, defaultInterval)
	keepAlive = orDefault(keepAlive, defaultKeepAlive)

	tlsConf, err := clientTLS(tlsCode, hostname)
	if err == nil && addrResolver == nil {
		err = fmt.Errorf("%w: nil address resolver", ErrInvalidConfig)
	}
	if err == nil {
		err = o.err
	}
	p := newPool(true, o)
	shards := shardCount(maxCap)
	p.spawn(o,
		actors.CoordinatorConfig{Client: true, MinCap: minCap, MaxCap: maxCap, MinIvl: minIvl, MaxIvl: maxIvl,
			Shards: shards, PerShard: StreamsPerShard, Err: err},
		actors.SupervisorConfig{Shards: shards, Client: &actors.ClientShardConfig{
			Dial: dialer(addrResolver, tlsConf, keepAlive, o.localAddr), IDTimeout: o.handshakeTimeout}})
	return p
}

// NewServerPool creates a server pool, as NodePass's quic.NewServerPool does. It listens on one
// UDP socket at listenAddr, accepts up to min(max(ceil(maxCap/128),1),64) client connections
// (only from clientIP when it is not "", see also WithAllowedClients), and holds at most maxCap idle streams. tlsConfig must
// carry a certificate; the pool forces TLS 1.3 and ALPN "np-quic" on a copy of it.
//
// maxCap <= 0 takes 1, keepAlive <= 0 takes 10s. An invalid argument does not panic: the pool's
// calls fail with an error wrapping ErrInvalidConfig. Nothing runs until ServerManager is called.
func NewServerPool(maxCap int, clientIP string, tlsConfig *tls.Config, listenAddr string, keepAlive time.Duration,
	opts ...Option) *Pool {
	o := buildOptions(opts)
	maxCap = orDefault(maxCap, defaultMaxCap)
	keepAlive = orDefault(keepAlive, defaultKeepAlive)

	tlsConf, err := serverTLS(tlsConfig)
	allow, allowErr := allowClients(append([]string{clientIP}, o.allowed...)...)
	if err == nil {
		err = allowErr
	}
	if err == nil {
		err = o.err
	}
	if err == nil && listenAddr == "" {
		err = fmt.Errorf("%w: empty listen address", ErrInvalidConfig)
	}
	p := newPool(false, o)
	shards := shardCount(maxCap)
	sup := actors.SupervisorConfig{Shards: shards, Allow: allow, HandshakeTimeout: o.handshakeTimeout, HoldTimeout: holdTimeout}
	if err == nil {
		sup.Listen = listener(listenAddr, tlsConf, keepAlive, maxCap, allow, func(addr net.Addr, err error) {
			p.engine.Send(p.supervisor, messages.Refused{Addr: addr.String(), Err: err})
		})
	} else {
		sup.Listen = func() (*quic.Listener, func(), error) { return nil, nil, err }
	}
	p.spawn(o,
		actors.CoordinatorConfig{MinCap: maxCap, MaxCap: maxCap, Shards: shards, PerShard: StreamsPerShard, Err: err},
		sup)
	return p
}

func newPool(client bool, o options) *Pool {
	p := &Pool{
		client:    client,
		log:       o.log,
		engine:    o.engine,
		started:   make(chan struct{}, 1),
		admission: make(chan struct{}, maxQueuedGets),
		closing:   make(chan struct{}, 1),
		done:      make(chan struct{}),
		closed:    make(chan struct{}),
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	if p.engine == nil {
		// NewEngine fails only when a remote is configured, and this config has none.
		p.engine, _ = actor.NewEngine(actor.NewEngineConfig())
	}
	return p
}

// spawn starts the pool's coordinator and supervisor. They are idle (no goroutine) until the
// manager starts them.
func (p *Pool) spawn(o options, coord actors.CoordinatorConfig, sup actors.SupervisorConfig) {
	rt := actors.Runtime{Ctx: p.ctx, Log: p.log, Go: p.goroutine}
	name := poolName()
	coord.Runtime, coord.Admission = rt, p.admission
	p.coordinator = actors.SpawnCoordinator(p.engine, coord, "coordinator."+name)
	sup.Runtime, sup.Coordinator = rt, p.coordinator
	sup.Policy = o.restart
	p.supervisor = actors.SpawnSupervisor(p.engine, sup, "supervisor."+name)
}

// goroutine runs f in a goroutine that Close waits for. A panic in f is logged, not fatal.
func (p *Pool) goroutine(f func()) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer func() {
			if v := recover(); v != nil {
				p.log.Error("goroutine panic recovered", "err", fmt.Errorf("%w: %v", actors.ErrPanic, v), "stack", string(debug.Stack()))
			}
		}()
		f()
	}()
}

// ClientManager runs the pool until Close; start it with go. ClientManager and ServerManager
// are the same: either runs the pool as its constructor made it.
func (p *Pool) ClientManager() { p.run() }

// ServerManager runs the pool until Close; start it with go. If the pool cannot listen, the
// error is logged, returned by the next IncomingGet/OutgoingGet, and listening is retried with
// the restart policy's backoff.
func (p *Pool) ServerManager() { p.run() }

func (p *Pool) run() {
	select {
	case p.started <- struct{}{}:
		select {
		case <-p.done:
			return
		default:
		}
		p.engine.Send(p.coordinator, messages.Start{})
		p.engine.Send(p.supervisor, messages.Start{})
	default:
	}
	<-p.done
}

// OutgoingGet returns the idle stream with the given ID, waiting up to timeout for it to arrive.
// The wait ends the moment the stream arrives. It fails at once with ErrInvalidID for an ID no
// pool can issue and with ErrStreamGone for an ID whose stream was discarded; after timeout it
// fails with ErrTimeout. A timeout <= 0 takes the stream only if it is idle now.
func (p *Pool) OutgoingGet(id string, timeout time.Duration) (net.Conn, error) {
	if _, err := actors.ParseID(id); err != nil {
		return nil, &OpError{Op: "OutgoingGet", ID: id, Err: err}
	}
	s, err := p.take(id, timeout)
	if err != nil {
		return nil, &OpError{Op: "OutgoingGet", ID: id, Err: err}
	}
	return NewStreamConn(s), nil
}

// IncomingGet returns any idle stream and its ID, waiting up to timeout for one. Streams are
// handed out oldest first; the control stream (ControlID) is never handed out here. After
// timeout it fails with ErrTimeout; a timeout <= 0 takes a stream only if one is idle now.
func (p *Pool) IncomingGet(timeout time.Duration) (string, net.Conn, error) {
	s, err := p.take("", timeout)
	if err != nil {
		return "", nil, &OpError{Op: "IncomingGet", Err: err}
	}
	return s.ID, NewStreamConn(s), nil
}

// take asks the coordinator for a stream and waits for it, the timeout, or Close.
func (p *Pool) take(id string, timeout time.Duration) (messages.Stream, error) {
	select {
	case <-p.done:
		return messages.Stream{}, ErrClosed
	default:
	}
	reply := make(chan messages.Stream, 1)
	get := messages.Get{ID: id, Reply: reply, Admitted: true}
	var expired <-chan time.Time
	if timeout > 0 {
		get.Deadline = time.Now().Add(timeout)
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		expired = timer.C
	} else {
		get.NoWait = true
	}
	select {
	case p.admission <- struct{}{}:
	default: // the coordinator is behind: wait for room, within the caller's time
		select {
		case p.admission <- struct{}{}:
		case <-expired:
			return messages.Stream{}, ErrTimeout
		case <-p.done:
			return messages.Stream{}, ErrClosed
		}
	}
	p.engine.Send(p.coordinator, get)
	var err error
	select {
	case s := <-reply:
		return s, s.Err
	case <-expired:
		err = ErrTimeout
	case <-p.done:
		err = ErrClosed
	}
	if s, ok := messages.Abandon(reply); ok {
		return s, s.Err // the stream arrived as we gave up: it is the caller's
	}
	return messages.Stream{}, err
}

// WaitReady blocks until the pool is running (see Ready) with at least n idle streams, the pool
// fails (its error is returned), ctx is done, or the pool is closed. Use it instead of sleeping
// after starting a pool.
func (p *Pool) WaitReady(ctx context.Context, n int) error {
	reply := make(chan error, 1)
	p.engine.Send(p.coordinator, messages.WaitReady{N: n, Done: ctx.Done(), Reply: reply})
	var err error
	select {
	case err = <-reply:
	case <-ctx.Done():
		err = ctx.Err()
	case <-p.done:
		err = ErrClosed
	}
	if err != nil {
		return &OpError{Op: "WaitReady", Err: err}
	}
	return nil
}

// Flush closes every idle stream (both directions). The pool refills at once.
func (p *Pool) Flush() {
	reply := make(chan struct{})
	p.engine.Send(p.coordinator, messages.Flush{Reply: reply})
	select {
	case <-reply:
	case <-p.done:
	}
}

// Close stops the pool: calls waiting for a stream fail with ErrClosed, idle streams and
// connections are closed, and Close returns when every actor and goroutine of the pool has
// stopped. Streams already handed out are closed with their connections. Close is idempotent and
// safe to call concurrently; every call returns once the pool is closed.
func (p *Pool) Close() {
	select {
	case p.closing <- struct{}{}:
	default:
		<-p.closed
		return
	}
	close(p.done)
	p.cancel()
	deadline, cancel := context.WithTimeout(context.Background(), closeDeadline)
	defer cancel()
	stopped := make(chan struct{})
	p.engine.Send(p.supervisor, messages.Shutdown{Reply: stopped})
	select {
	case <-stopped:
	case <-deadline.Done():
		p.log.Error("close: shards did not stop in time")
	}
	<-p.engine.PoisonCtx(deadline, p.supervisor).Done()
	<-p.engine.PoisonCtx(deadline, p.coordinator).Done()
	p.wg.Wait()
	close(p.closed)
}

// Ready reports whether the pool is running and can serve: a client pool has at least one
// connection up, a server pool is listening. It is false before the manager starts and after
// Close.
func (p *Pool) Ready() bool {
	s, ok := p.snapshot()
	return ok && s.Running
}

// Active returns the number of idle streams ready to be handed out.
func (p *Pool) Active() int {
	s, _ := p.snapshot()
	return s.Idle
}

// Capacity returns the number of idle streams the pool keeps ready: tuned between minCap and
// maxCap for a client pool, maxCap for a server pool.
func (p *Pool) Capacity() int {
	s, _ := p.snapshot()
	return s.Capacity
}

// Interval returns the client pool's current refill interval (0 for a server pool).
func (p *Pool) Interval() time.Duration {
	s, _ := p.snapshot()
	return s.Interval
}

// ShardCount returns the number of QUIC connections the pool dials (client) or accepts
// (server): min(max(ceil(maxCap/128),1),64).
func (p *Pool) ShardCount() int {
	s, _ := p.snapshot()
	return s.Shards
}

// AddError increments the pool's error counter. The counter is the application's: NodePass
// uses it to decide when to flush the pool.
func (p *Pool) AddError() { p.engine.Send(p.coordinator, messages.AddError{}) }

// ErrorCount returns the pool's error counter.
func (p *Pool) ErrorCount() int {
	s, _ := p.snapshot()
	return s.Errors
}

// ResetError sets the pool's error counter to zero.
func (p *Pool) ResetError() { p.engine.Send(p.coordinator, messages.ResetError{}) }

// Addr returns the address a server pool listens on ("" until it listens, and for a client
// pool). Useful with a listen address of port 0.
func (p *Pool) Addr() string {
	s, _ := p.snapshot()
	return s.ListenAddr
}

// Stats is a consistent snapshot of a pool's state and counters; package messages documents
// every field.
type Stats = messages.Snapshot

// Stats returns a snapshot of the pool, taken in one step by its coordinator. After Close it
// returns the zero Stats.
func (p *Pool) Stats() Stats {
	s, _ := p.snapshot()
	return s
}

// Err returns the error that currently fails the pool's calls while no connection is up (an
// invalid argument, a listen failure, connections that keep failing), or nil. The most recent
// failure of any kind, even one the pool is recovering from, is in Stats().LastErr.
func (p *Pool) Err() error {
	s, _ := p.snapshot()
	return s.Err
}

// Engine returns the hollywood engine the pool's actors run on.
func (p *Pool) Engine() *actor.Engine { return p.engine }

// Coordinator returns the PID of the pool's coordinator, the actor an embedding system sends the
// request messages of package messages to (Get, State, Flush, AddError, ResetError).
func (p *Pool) Coordinator() *actor.PID { return p.coordinator }

// snapshot asks the coordinator for its state; ok is false once the pool is closing.
func (p *Pool) snapshot() (messages.Snapshot, bool) {
	reply := make(chan messages.Snapshot, 1)
	p.engine.Send(p.coordinator, messages.State{Reply: reply})
	select {
	case s := <-reply:
		return s, true
	case <-p.done:
		return messages.Snapshot{}, false
	}
}

func normalize[T int | time.Duration](lo, hi, defLo, defHi T) (T, T) {
	lo, hi = orDefault(lo, defLo), orDefault(hi, defHi)
	if lo > hi {
		lo, hi = hi, lo
	}
	return lo, hi
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// poolName makes the actor names of one pool unique within a shared engine.
func poolName() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
