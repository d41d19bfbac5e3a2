package quicpool

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quicpool/quicpool/actors"
	"github.com/quicpool/quicpool/internal/core"
	"github.com/quicpool/quicpool/internal/wire"
	"github.com/quicpool/quicpool/messages"
)

const (
	// closeDeadline bounds each step of Close that waits for actors to stop.
	closeDeadline = 5 * time.Second
	// maxQueuedGets bounds the Get requests of one pool that are sent but not yet handled by its
	// coordinator; callers beyond it wait (within their timeout) before sending.
	maxQueuedGets = 1024
	// causeWait bounds how long a call that timed out waits for the coordinator to say why the
	// pool has no connection. A coordinator with no connection to serve answers in microseconds;
	// one that is far behind (which may be why the call timed out) must not hold the call much
	// past its timeout: the call then fails with a bare timeout.
	causeWait = 100 * time.Millisecond
	// spareRequests is how many answered requests (their message, reply channel and timer) a pool
	// keeps for the next takes, which would otherwise cost three allocations each, and three more
	// for the timer of a NodePass-compatible call (IncomingGet, OutgoingGet).
	spareRequests = 64
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
	cfg         *core.Config
	engine      *actor.Engine
	coordinator *actor.PID
	supervisor  *actor.PID

	cancel context.CancelFunc // ends the pool's lifetime, cfg.Ctx: Close calls it first
	wg     sync.WaitGroup     // every goroutine the pool starts

	final    messages.Stats   // the coordinator's last Stats, written before cfg.Stopped is closed
	requests spares[*request] // of take, answered and done with (request)
	started  chan struct{}    // one-slot token: the first manager call takes it
	closing  chan struct{}    // one-slot token: the first Close call takes it
	done     chan struct{}    // closed when Close begins
	closed   chan struct{}    // closed when Close has finished
}

// Stats is a consistent snapshot of a pool's state and counters; see messages.Stats for each
// field. It is the same type an embedding actor receives for a messages.State request.
type Stats = messages.Stats

var discardLogger = slog.New(slog.DiscardHandler)

// newPool spawns the pool's coordinator and supervisor, as top-level actors of the engine or as
// children of the WithParent actor. Until the pool starts, they do nothing (the coordinator waits
// for messages on its goroutine).
func newPool(s settings, cfg *core.Config) *Pool {
	p := &Pool{
		cfg:      cfg,
		engine:   s.engine,
		requests: make(spares[*request], spareRequests),
		started:  make(chan struct{}, 1),
		closing:  make(chan struct{}, 1),
		done:     make(chan struct{}),
		closed:   make(chan struct{}),
	}
	cfg.Log = s.log
	if cfg.Log == nil {
		cfg.Log = discardLogger
	}
	if s.name != "" {
		cfg.Log = cfg.Log.With("pool", s.name)
	}
	cfg.Ctx, p.cancel = context.WithCancel(context.Background())
	cfg.Go, cfg.Name = p.goroutine, poolName()
	cfg.Takes = make(chan *core.Take, maxQueuedGets)
	cfg.Final, cfg.Stopped, cfg.SupervisorStopped = &p.final, make(chan struct{}), make(chan struct{})
	if p.engine == nil {
		// NewEngine fails only when a remote is configured, and this config has none.
		p.engine, _ = actor.NewEngine(actor.NewEngineConfig())
	}
	spawn := core.Spawner(p.engine.Spawn)
	if s.parent != nil {
		spawn = s.parent.SpawnChild
	}
	p.coordinator, p.supervisor = actors.Spawn(spawn, cfg)
	return p
}

// goroutine runs f in a goroutine that Close waits for. A panic in f is logged, not fatal.
func (p *Pool) goroutine(f func()) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer func() {
			if v := recover(); v != nil {
				p.cfg.Log.Error("goroutine panic recovered", "err", fmt.Errorf("%w: %v", ErrPanic, v), "stack", string(debug.Stack()))
			}
		}()
		f()
	}()
}

// ClientManager runs the pool until Close; start it with go. ClientManager and ServerManager
// are the same: either runs the pool as its constructor made it.
func (p *Pool) ClientManager() { p.run() }

// ServerManager runs the pool until Close; start it with go. If the pool cannot listen, the
// error is logged, returned by Err and by every call, and listening is retried with the restart
// policy's backoff.
func (p *Pool) ServerManager() { p.run() }

func (p *Pool) run() {
	p.start()
	select {
	case <-p.done:
	case <-p.cfg.Stopped:
	}
}

// start starts the pool once: the coordinator's refill cycle and the supervisor's dials or
// listener. A pool with an invalid configuration starts nothing but fails every call.
func (p *Pool) start() {
	select {
	case p.started <- struct{}{}:
	default:
		return
	}
	if p.stopping() {
		return
	}
	p.cfg.Tell(core.Start{})
	p.engine.Send(p.supervisor, core.Start{})
}

// stopping reports whether the pool is closing or its actors have stopped. It is on every take's
// path, and looks at each channel on its own: a receive from one open channel is a read without a
// lock, where a select over both takes both channels' locks (0.7% of BenchmarkTunnel's CPU).
func (p *Pool) stopping() bool {
	return core.IsClosed(p.done) || core.IsClosed(p.cfg.Stopped)
}

// Get returns the idle stream with the given ID, waiting for it to arrive until ctx is done. It
// fails at once with ErrInvalidID for an ID no pool can issue, with ErrStreamGone for an ID whose
// stream was discarded, and with ErrUnavailable while the pool cannot connect for a reason
// retrying will not fix. When ctx's deadline passes the error satisfies both
// errors.Is(err, ErrTimeout) and errors.Is(err, context.DeadlineExceeded), and on a client wraps
// the reason it has no connection that answers, if it has none (a server's is bare).
func (p *Pool) Get(ctx context.Context, id string) (*StreamConn, error) {
	return p.getByID(ctxBound(ctx), "Get", id, false)
}

// Accept returns any idle stream (its ID is StreamConn.ID), waiting for one until ctx is done.
// Idle streams are handed out in turn from each peer address and, within one, from each of its
// connections (up to 16 in a row from one), in arrival order within a connection (after a
// silence, a connection's streams start over in no set order). The control stream
// (ControlID) is only ever returned by Get. Errors are those of Get.
func (p *Pool) Accept(ctx context.Context) (*StreamConn, error) {
	s, err := p.take(ctxBound(ctx), "", false)
	if err != nil {
		return nil, &OpError{Op: "Accept", Err: err}
	}
	return NewStreamConn(s), nil
}

func (p *Pool) getByID(b bound, op, id string, noWait bool) (*StreamConn, error) {
	if _, err := wire.ParseID(id); err != nil {
		return nil, &OpError{Op: op, ID: id, Err: err}
	}
	s, err := p.take(b, id, noWait)
	if err != nil {
		return nil, &OpError{Op: op, ID: id, Err: err}
	}
	return NewStreamConn(s), nil
}

// OutgoingGet returns the idle stream with the given ID, waiting up to timeout for it to arrive.
// The wait ends the moment the stream arrives. It fails at once with ErrInvalidID for an ID no
// pool can issue, with ErrStreamGone for an ID whose stream was discarded, and with
// ErrUnavailable while the pool cannot connect for a reason retrying will not fix; after timeout
// it fails with ErrTimeout (on a client, wrapping why it has no connection that answers, if it
// has none; a server's is bare). A timeout <= 0 takes the stream only if it is idle now.
func (p *Pool) OutgoingGet(id string, timeout time.Duration) (net.Conn, error) {
	c, err := p.getByID(timeoutBound(timeout), "OutgoingGet", id, timeout <= 0)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// IncomingGet returns any idle stream and its ID, waiting up to timeout for one. Streams are
// handed out in the order Accept gives them; the control stream (ControlID) is never handed out
// here. Errors are those of OutgoingGet. A timeout <= 0 takes a stream only if one is idle now.
func (p *Pool) IncomingGet(timeout time.Duration) (string, net.Conn, error) {
	s, err := p.take(timeoutBound(timeout), "", timeout <= 0)
	if err != nil {
		return "", nil, &OpError{Op: "IncomingGet", Err: err}
	}
	return s.ID, NewStreamConn(s), nil
}

// bound is what ends a Get's wait: the caller's context (Get, Accept), or the timeout of a
// NodePass-compatible call, which has no context and is timed with a plain timer, its request's
// (cheaper than a context with a deadline, on every take of the hot path).
type bound struct {
	ctx      context.Context // nil for a timeout
	timeout  time.Duration   // with no ctx: the call's timeout; <= 0, the call does not wait
	deadline time.Time       // zero for none
}

func ctxBound(ctx context.Context) bound {
	b := bound{ctx: ctx}
	b.deadline, _ = ctx.Deadline()
	return b
}

// timeoutBound bounds a wait by timeout; <= 0 is no bound (the call does not wait).
func timeoutBound(timeout time.Duration) bound {
	if timeout <= 0 {
		return bound{}
	}
	// Taken before the request's timer starts: the coordinator's drop time is never after the
	// timer fires.
	return bound{timeout: timeout, deadline: time.Now().Add(timeout)}
}

func (b bound) done() <-chan struct{} {
	if b.ctx == nil {
		return nil
	}
	return b.ctx.Done()
}

// request is what take sends the coordinator (by pointer), with the channel of its answer and
// the timer of its wait. The coordinator answers a request once, and copies it as it takes it in:
// once the answer came, the request is done with, and serves the next take (recycle). One whose
// caller gave up before its answer came is not kept: its channel holds Abandon's mark, and the
// coordinator may still hold the request and answer it later, which must not reach another take.
type request struct {
	msg   core.Take
	reply chan messages.Stream
	timer *time.Timer // a NodePass-compatible call's; made by the first that needs it, then reused
}

// newRequest returns a spare request, or a new one.
func (p *Pool) newRequest() *request {
	if r, ok := p.requests.take(); ok {
		return r
	}
	return &request{reply: make(chan messages.Stream, 1)}
}

// arm starts r's timer for b's timeout and returns its channel; nil (no expiry) for a context's
// bound or a call that does not wait.
func (r *request) arm(b bound) <-chan time.Time {
	switch {
	case b.timeout <= 0:
		return nil
	case r.timer == nil:
		r.timer = time.NewTimer(b.timeout)
	default:
		r.timer.Reset(b.timeout)
	}
	return r.timer.C
}

// disarm stops r's timer. The expiry of a timer that fired unread is drained, so the next take
// never sees it (Go 1.23 and later deliver no such value after Stop; a program built with
// asynctimerchan=1 still would). Such a program may also be between the firing and the delivery
// when Stop reports the timer fired: with no expiry to drain yet, the timer is dropped, not
// reused.
func (r *request) disarm() {
	if r.timer == nil || r.timer.Stop() {
		return
	}
	select {
	case <-r.timer.C:
	default:
		r.timer = nil
	}
}

// recycle keeps r, its timer stopped, for the next take, if the pool has room for it.
func (p *Pool) recycle(r *request) {
	r.disarm()
	p.requests.keep(r)
}

// spares holds up to cap(s) values a pool reuses instead of allocating them again (requests).
type spares[T any] chan T

// take returns a spare value, if there is one.
func (s spares[T]) take() (T, bool) {
	select {
	case v := <-s:
		return v, true
	default:
		var zero T
		return zero, false
	}
}

// keep keeps v for reuse, if there is room for it.
func (s spares[T]) keep(v T) {
	select {
	case s <- v:
	default:
	}
}

// take asks the coordinator for a stream and waits for it, the bound, or the pool's end. With
// noWait the coordinator answers at once, with a stream or ErrTimeout.
func (p *Pool) take(b bound, id string, noWait bool) (messages.Stream, error) {
	if p.stopping() {
		return messages.Stream{}, ErrClosed
	}
	r := p.newRequest()
	expired := r.arm(b)
	r.msg.Get = messages.Get{ID: id, Reply: r.reply, NoWait: noWait, Deadline: b.deadline}
	select {
	case p.cfg.Takes <- &r.msg:
	default: // the coordinator is behind: wait for room, within the caller's time
		select {
		case p.cfg.Takes <- &r.msg:
		case <-b.done():
			p.recycle(r)
			return messages.Stream{}, p.boundErr(b)
		case <-expired:
			p.recycle(r)
			return messages.Stream{}, p.boundErr(b)
		case <-p.done:
			p.recycle(r)
			return messages.Stream{}, ErrClosed
		case <-p.cfg.Stopped:
			p.recycle(r)
			return messages.Stream{}, ErrClosed
		}
	}
	select {
	case s := <-r.reply:
		p.recycle(r)
		return s, s.Err
	case <-b.done():
	case <-expired:
	case <-p.done:
	case <-p.cfg.Stopped:
	}
	r.disarm()
	if s, ok := messages.Abandon(r.reply); ok {
		// Disarmed already: a second disarm would find Stop reporting false and drop the timer.
		p.requests.keep(r)
		return s, s.Err // the stream arrived as we gave up: it is the caller's
	}
	if p.stopping() {
		return messages.Stream{}, ErrClosed
	}
	return messages.Stream{}, p.boundErr(b)
}

// boundErr is the error of a call whose bound ended: the context's error, or, for a timeout,
// ErrTimeout alone (the NodePass-compatible calls) and why the pool has no connection.
func (p *Pool) boundErr(b bound) error {
	if b.ctx == nil {
		return p.deadlineErr(true)
	}
	return p.ctxErr(b.ctx)
}

// ctxErr is the error of a call whose ctx is done: for a deadline, ErrTimeout and
// context.DeadlineExceeded, and why the pool has no connection, if it has none.
func (p *Pool) ctxErr(ctx context.Context) error {
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ctx.Err()
	}
	return p.deadlineErr(false)
}

// deadlineErr is the error of a call that timed out: ErrTimeout (with context.DeadlineExceeded
// unless plain) and why the pool has no connection, if it has none.
func (p *Pool) deadlineErr(plain bool) error {
	cause := p.cause()
	switch {
	case !plain:
		return core.Deadline(cause)
	case cause != nil:
		return fmt.Errorf("%w: %w", ErrTimeout, cause)
	default:
		return ErrTimeout
	}
}

// cause asks the coordinator why the pool cannot serve now, and waits for the answer at most
// causeWait; nil if it can serve, if it did not answer in time, or if the pool is closed.
func (p *Pool) cause() error {
	wait, cancel := context.WithTimeout(context.Background(), causeWait)
	defer cancel()
	reply := make(chan error, 1)
	p.cfg.TellWithin(core.Cause{Reply: reply}, wait.Done())
	select {
	case err := <-reply:
		return err
	case <-wait.Done():
	case <-p.cfg.Stopped:
	case <-p.closed:
	}
	return nil
}

// WaitReady blocks until the pool is running (see Ready) with at least n idle streams; a client
// whose capacity is below n raises it to n at once, and keeps it there while the call waits. It
// fails at once with ErrInvalidArgument if the pool can never hold n idle streams, with the
// pool's error if it cannot serve (see Err and ErrUnavailable), with ErrClosed if the pool
// closes, and when ctx is done with ctx's error: after its deadline that is ErrTimeout (and
// context.DeadlineExceeded), on a client wrapping why it has no connection that answers, if it
// has none. Use it instead of sleeping after starting a pool.
func (p *Pool) WaitReady(ctx context.Context, n int) error {
	if p.stopping() {
		return &OpError{Op: "WaitReady", Err: ErrClosed}
	}
	reply := make(chan error, 1)
	p.cfg.TellWithin(messages.WaitReady{N: n, Done: ctx.Done(), Reply: reply}, ctx.Done())
	var err error
	select {
	case err = <-reply:
	case <-ctx.Done():
		err = p.ctxErr(ctx)
	case <-p.done:
		err = ErrClosed
	case <-p.cfg.Stopped:
		err = ErrClosed
	}
	if err != nil {
		return &OpError{Op: "WaitReady", Err: err}
	}
	return nil
}

// Flush closes every idle stream (both directions); the peer's pool discards its side of each.
// The pool refills at once.
func (p *Pool) Flush() {
	reply := make(chan struct{}, 1)
	p.cfg.Tell(messages.Flush{Reply: reply})
	select {
	case <-reply:
	case <-p.done:
	case <-p.cfg.Stopped:
	}
}

// Close stops the pool: calls waiting for a stream fail with ErrClosed, idle streams and
// connections are closed, and Close returns when every actor and goroutine of the pool has
// stopped (quic-go's transport may end its send loop a moment later: its Close does not wait for
// it). Streams already handed out are closed with their connections. Close is idempotent and
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
	stopped := make(chan struct{})
	p.engine.Send(p.supervisor, core.Shutdown{Reply: stopped})
	step := time.NewTimer(closeDeadline)
	defer step.Stop()
	select {
	case <-stopped:
	case <-p.cfg.SupervisorStopped: // stopped already, with its shards (a WithParent parent stopped)
	case <-step.C:
		p.cfg.Log.Error("close: shards did not stop in time")
	}
	p.stopActor(p.supervisor, "supervisor")
	p.stopActor(p.coordinator, "coordinator")
	p.wg.Wait()
	close(p.closed)
}

// stopActor stops one of the pool's actors once it has handled the messages already sent to it,
// and waits for it to stop, at most closeDeadline.
func (p *Pool) stopActor(pid *actor.PID, name string) {
	deadline, cancel := context.WithTimeout(context.Background(), closeDeadline)
	defer cancel()
	<-p.engine.PoisonCtx(deadline, pid).Done()
	if deadline.Err() != nil {
		p.cfg.Log.Error("close: the " + name + " did not stop in time")
	}
}

// Stats returns a snapshot of the pool, taken in one step by its coordinator. After Close it is
// the pool's last state, with Closed set and Err == ErrClosed.
func (p *Pool) Stats() Stats {
	reply := make(chan Stats, 1)
	p.cfg.Tell(messages.State{Reply: reply})
	select {
	case s := <-reply:
		return s
	case <-p.cfg.Stopped:
	case <-p.closed:
	}
	select {
	case <-p.cfg.Stopped:
		return p.final // written by the coordinator before it closed Stopped
	default: // the coordinator did not stop within Close's deadline
		return Stats{Closed: true, Err: ErrClosed, FailFast: true}
	}
}

// Err returns why the pool cannot serve now, or nil if it knows of no reason (while it serves,
// and also before its manager runs or its first connection attempt ends: Ready says whether it
// serves). The reasons: the configuration error, a
// server's listen error, on a client with no connection up ErrUnavailable wrapping the last
// connection failure, and ErrClosed after Close. It clears when a connection comes up. Whether
// calls fail at once with it or wait for a connection is Stats().FailFast.
func (p *Pool) Err() error { return p.Stats().Err }

// Ready reports whether the pool is running and can serve: a client pool has at least one
// connection up, a server pool is listening. It is false before the manager starts and after
// Close.
func (p *Pool) Ready() bool { return p.Stats().Running }

// Active returns the number of idle streams ready to be handed out.
func (p *Pool) Active() int { return p.Stats().Idle }

// Capacity returns the number of idle streams the pool keeps ready: tuned between minCap and
// maxCap for a client pool, maxCap for a server pool.
func (p *Pool) Capacity() int { return p.Stats().Capacity }

// Interval returns the client pool's current refill interval (0 for a server pool).
func (p *Pool) Interval() time.Duration { return p.Stats().Interval }

// ShardCount returns the number of QUIC connections the pool dials (client), or accepts from
// one client address (server): min(max(ceil(maxCap/128),1),64). A server accepts twice as many
// in all, from several addresses.
func (p *Pool) ShardCount() int { return p.cfg.Shards }

// AddError increments the pool's error counter. The counter is the application's: NodePass
// uses it to decide when to flush the pool.
func (p *Pool) AddError() { p.cfg.Tell(messages.AddError{}) }

// ErrorCount returns the pool's error counter.
func (p *Pool) ErrorCount() int { return p.Stats().Errors }

// ResetError sets the pool's error counter to zero.
func (p *Pool) ResetError() { p.cfg.Tell(messages.ResetError{}) }

// Addr returns the address a server pool listens on ("" until it listens, and for a client
// pool). Useful with a listen address of port 0.
func (p *Pool) Addr() string { return p.Stats().ListenAddr }

// Engine returns the hollywood engine the pool's actors run on.
func (p *Pool) Engine() *actor.Engine { return p.engine }

// Coordinator returns the PID of the pool's coordinator, the actor an embedding system sends the
// requests of package messages to.
func (p *Pool) Coordinator() *actor.PID { return p.coordinator }

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

// poolName makes the actor IDs of one pool unique within a shared engine.
func poolName() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
