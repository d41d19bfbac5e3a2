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
	err         error // the configuration error, if any: every call fails with it
	log         *slog.Logger
	engine      *actor.Engine
	coordinator *actor.PID
	supervisor  *actor.PID

	ctx    context.Context // the pool's lifetime: cancelled when Close begins
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the pool starts

	admission      chan struct{} // tokens of Get requests not yet handled by the coordinator
	started        chan struct{} // one-slot token: the first manager call takes it
	closing        chan struct{} // one-slot token: the first Close call takes it
	done           chan struct{} // closed when Close begins
	gone           chan struct{} // closed when the coordinator stops (Close, or a WithParent parent stopping)
	supervisorGone chan struct{} // closed when the supervisor stops
	closed         chan struct{} // closed when Close has finished
}

var discardLogger = slog.New(slog.DiscardHandler)

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
	p.start()
	select {
	case <-p.done:
	case <-p.gone:
	}
}

// start starts the pool once: the coordinator's refill cycle and the supervisor's dials or
// listener. A pool with an invalid configuration only starts its coordinator, which fails every
// call with the configuration error.
func (p *Pool) start() {
	select {
	case p.started <- struct{}{}:
	default:
		return
	}
	if p.stopping() {
		return
	}
	p.engine.Send(p.coordinator, messages.Start{})
	if p.err == nil {
		p.engine.Send(p.supervisor, messages.Start{})
	}
}

// stopping reports whether the pool is closing or its actors have stopped.
func (p *Pool) stopping() bool {
	select {
	case <-p.done:
		return true
	case <-p.gone:
		return true
	default:
		return false
	}
}

// Get returns the idle stream with the given ID, waiting for it to arrive until ctx is done. It
// fails at once with ErrInvalidID for an ID no pool can issue and with ErrStreamGone for an ID
// whose stream was discarded. When ctx's deadline passes the error satisfies both
// errors.Is(err, ErrTimeout) and errors.Is(err, context.DeadlineExceeded).
func (p *Pool) Get(ctx context.Context, id string) (*StreamConn, error) {
	return p.getByID(ctx, "Get", id, false)
}

// Accept returns any idle stream (its ID is StreamConn.ID), oldest first, waiting for one until
// ctx is done. The control stream (ControlID) is only ever returned by Get.
func (p *Pool) Accept(ctx context.Context) (*StreamConn, error) {
	s, err := p.take(ctx, "", false)
	if err != nil {
		return nil, &OpError{Op: "Accept", Err: err}
	}
	return NewStreamConn(s), nil
}

func (p *Pool) getByID(ctx context.Context, op, id string, noWait bool) (*StreamConn, error) {
	if _, err := actors.ParseID(id); err != nil {
		return nil, &OpError{Op: op, ID: id, Err: err}
	}
	s, err := p.take(ctx, id, noWait)
	if err != nil {
		return nil, &OpError{Op: op, ID: id, Err: err}
	}
	return NewStreamConn(s), nil
}

// OutgoingGet returns the idle stream with the given ID, waiting up to timeout for it to arrive.
// The wait ends the moment the stream arrives. It fails at once with ErrInvalidID for an ID no
// pool can issue and with ErrStreamGone for an ID whose stream was discarded; after timeout it
// fails with ErrTimeout. A timeout <= 0 takes the stream only if it is idle now.
func (p *Pool) OutgoingGet(id string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := timeoutContext(timeout)
	defer cancel()
	c, err := p.getByID(ctx, "OutgoingGet", id, timeout <= 0)
	if err != nil {
		return nil, plainTimeout(err)
	}
	return c, nil
}

// IncomingGet returns any idle stream and its ID, waiting up to timeout for one. Streams are
// handed out oldest first; the control stream (ControlID) is never handed out here. After
// timeout it fails with ErrTimeout; a timeout <= 0 takes a stream only if one is idle now.
func (p *Pool) IncomingGet(timeout time.Duration) (string, net.Conn, error) {
	ctx, cancel := timeoutContext(timeout)
	defer cancel()
	s, err := p.take(ctx, "", timeout <= 0)
	if err != nil {
		return "", nil, plainTimeout(&OpError{Op: "IncomingGet", Err: err})
	}
	return s.ID, NewStreamConn(s), nil
}

// plainTimeout reports a timed-out call of the NodePass-compatible API as ErrTimeout alone: its
// callers gave a timeout, not a context.
func plainTimeout(err error) error {
	var op *OpError
	if errors.As(err, &op) && op.Err == errDeadline {
		op.Err = ErrTimeout
	}
	return err
}

func timeoutContext(timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout <= 0 {
		return context.Background(), func() {}
	}
	return context.WithTimeout(context.Background(), timeout)
}

// errDeadline is the error of a call whose context's deadline passed.
var errDeadline = fmt.Errorf("%w (%w)", ErrTimeout, context.DeadlineExceeded)

// take asks the coordinator for a stream and waits for it, ctx, or the pool's end. With noWait
// the coordinator answers at once, with a stream or ErrTimeout.
func (p *Pool) take(ctx context.Context, id string, noWait bool) (messages.Stream, error) {
	if p.stopping() {
		return messages.Stream{}, ErrClosed
	}
	reply := make(chan messages.Stream, 1)
	get := messages.Get{ID: id, Reply: reply, Admitted: true, NoWait: noWait}
	get.Deadline, _ = ctx.Deadline()
	select {
	case p.admission <- struct{}{}:
	default: // the coordinator is behind: wait for room, within the caller's time
		select {
		case p.admission <- struct{}{}:
		case <-ctx.Done():
			return messages.Stream{}, ctxErr(ctx)
		case <-p.done:
			return messages.Stream{}, ErrClosed
		case <-p.gone:
			return messages.Stream{}, ErrClosed
		}
	}
	p.engine.Send(p.coordinator, get)
	var err error
	select {
	case s := <-reply:
		return s, s.Err
	case <-ctx.Done():
		err = ctxErr(ctx)
	case <-p.done:
		err = ErrClosed
	case <-p.gone:
		err = ErrClosed
	}
	if s, ok := messages.Abandon(reply); ok {
		return s, s.Err // the stream arrived as we gave up: it is the caller's
	}
	return messages.Stream{}, err
}

func ctxErr(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return errDeadline
	}
	return ctx.Err()
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
	case <-p.gone:
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
	case <-p.gone:
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
	case <-p.supervisorGone: // stopped already, with its shards (a WithParent parent stopped)
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
	case <-p.gone:
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
