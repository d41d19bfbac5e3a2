package actors

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool/internal/core"
	"github.com/quicpool/quicpool/internal/wire"
	"github.com/quicpool/quicpool/messages"
)

// clientShard owns one client connection: it dials it, opens streams on it when the coordinator
// asks (on its opener workers, which run the handshakes and hand each stream straight to the
// coordinator), and reports the connection's death to the supervisor, which replaces the shard.
type clientShard struct {
	shard
	conn      *quic.Conn
	fastUntil time.Time // dial every core.RedialInterval until then (see connect)
	openers   *workers  // run the stream opens; created when the connection is up
	openJob   func()    // one stream open on the connection, as the openers run it
}

func newClientShard(rt *runtime, slot int, fastUntil time.Time) actor.Producer {
	return func() actor.Receiver { return &clientShard{shard: shard{rt: rt, slot: slot}, fastUntil: fastUntil} }
}

func (s *clientShard) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		s.started(c)
		s.rt.Go(s.rt.guard(s.dial, s.lost))
	case actor.Stopped:
		s.stopped()
	case dialed:
		s.up(m.conn)
	case openStreams:
		s.open(m.n)
	case violation:
		s.failClosing(wire.ConnCodeViolation, m.err)
	case drainStreams:
		s.drain(m.streams)
	case connLost:
		s.fail(m.err)
	}
}

// dial runs in its own goroutine for the life of the connection: it connects, reports, then
// watches the connection (watchConn) until it dies (reported as connLost) or the shard stops (it
// closes the connection then, so a connection is never leaked, even if the shard stopped
// mid-dial).
func (s *clientShard) dial() {
	conn, release, err := s.connect()
	if err != nil {
		s.lost(refusedBy(err))
		return
	}
	defer release()
	s.engine.Send(s.self, dialed{conn: conn})
	s.watchConn(conn, "quicpool: connection closed by the client pool")
}

// attempt is the outcome of one dial.
type attempt struct {
	conn    *quic.Conn
	release func()
	err     error
}

// connect dials until a connection is up. Until fastUntil it starts a fresh attempt every
// core.RedialInterval, alongside those still waiting for an answer: after an outage, the first
// Initial packet sent once the path is back gets through, instead of waiting for a backed-off
// retransmission. An attempt that fails for a reason other than silence (refused, TLS, resolver)
// ends the loop with its error, and so does silence after fastUntil; the supervisor then restarts
// the shard after its backoff. The other attempts are cancelled, and a second winner is closed.
func (s *clientShard) connect() (*quic.Conn, func(), error) {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	results := make(chan attempt)
	inflight := 0
	start := func() {
		inflight++
		// A panic (in the resolver, say) ends the attempt with ErrPanic: every attempt reports.
		s.rt.Go(s.rt.guard(func() {
			conn, release, err := s.rt.dial(ctx)
			results <- attempt{conn: conn, release: release, err: err}
		}, func(err error) { results <- attempt{err: err} }))
	}
	ticker := time.NewTicker(core.RedialInterval)
	defer ticker.Stop()
	start()
	var won *attempt
	var failure error
	for inflight > 0 {
		select {
		case a := <-results:
			inflight--
			switch {
			case a.err == nil && won == nil && failure == nil:
				won = &a
				cancel()
			case a.err == nil:
				_ = a.conn.CloseWithError(wire.ConnCodeClosed, "quicpool: another attempt connected first")
				a.release()
			case won != nil || failure != nil || ctx.Err() != nil: // cancelled: the outcome is known
			case silence(a.err) && time.Now().Before(s.fastUntil):
				s.rt.Tell(dialFailed{err: a.err})
				if inflight == 0 {
					start()
				}
			default:
				failure = a.err
				cancel()
			}
		case <-ticker.C:
			if won == nil && failure == nil && ctx.Err() == nil && time.Now().Before(s.fastUntil) {
				start()
			}
		}
	}
	switch {
	case won != nil:
		return won.conn, won.release, nil
	case failure != nil:
		return nil, nil, failure
	default:
		return nil, nil, s.ctx.Err()
	}
}

// silence reports whether a dial failed because no answer came.
func silence(err error) bool {
	var idle *quic.IdleTimeoutError
	var handshake *quic.HandshakeTimeoutError
	return errors.As(err, &idle) || errors.As(err, &handshake) || errors.Is(err, context.DeadlineExceeded)
}

func (s *clientShard) up(conn *quic.Conn) {
	if s.failed {
		return // the dial goroutine closes the connection when the shard stops
	}
	s.conn, s.upAt = conn, time.Now()
	s.openers = newWorkers(s.rt, s.ctx, openersAtOnce)
	s.openJob = s.rt.guard(func() { s.openStream(conn) }, func(err error) { s.openFailed(err, 1) })
	s.rt.Log.Info("connected", "slot", s.slot, "remote", conn.RemoteAddr().String())
	s.rt.emit(s.engine, messages.Event{Kind: messages.EventShardUp, Slot: s.slot, Addr: conn.RemoteAddr().String()})
	s.rt.Tell(shardUp{shard: s.self, slot: s.slot, conn: conn,
		opener: opener{workers: s.openers, job: s.openJob}})
	s.engine.Send(s.rt.supervisor, connected{shard: s.self, slot: s.slot})
}

const (
	// openersAtOnce is how many long-lived workers a client shard opens streams with; a batch
	// beyond them gets a goroutine of its own, so that Receive never waits.
	openersAtOnce = 32
	// openBatch is the most stream opens one worker runs together (openStreams).
	openBatch = 16
)

// open starts n stream opens on the shard's workers, in batches of at most openBatch, starting
// workers as needed.
func (s *clientShard) open(n int) {
	if s.failed || s.conn == nil {
		return // the coordinator forgets what it asked of this shard when the shard goes down
	}
	for n > 0 {
		k := min(n, openBatch)
		n -= k
		job := s.openJob
		if k > 1 {
			conn := s.conn
			// A panic reports the whole batch failed, the streams already handed over included:
			// the coordinator then counts too few opens in flight and opens a few streams too
			// many, rather than waiting for opens that will never report.
			job = s.rt.guard(func() { s.openStreams(conn, k) }, func(err error) { s.openFailed(err, k) })
		}
		if !s.openers.tryRun(job) {
			s.rt.Go(job)
		}
	}
}

// opener lets the coordinator start a stream open on an idle worker of a client shard directly:
// replacing a taken stream is the hot path, and a message to the shard would cost an actor wake
// per stream. offer reports false if no worker is idle; the coordinator then sends the shard
// openStreams, which starts workers. The workers, the connection and the job stay the shard's:
// the coordinator only sends on the workers' channel. The zero opener (a server shard's) never
// has a worker idle.
type opener struct {
	workers *workers
	job     func()
}

func (o opener) offer() bool { return o.workers != nil && o.workers.offer(o.job) }

// openStream opens one stream and runs the client side of its handshake (openStreams of one).
func (s *clientShard) openStream(conn *quic.Conn) { s.openStreams(conn, 1) }

// openStreams opens n streams and runs their handshakes, in rounds. A round opens a stream,
// waiting for the server's stream credit if it has to (at most HandshakeTimeout), then as many
// more as the credit allows at once, and writes each one's handshake byte (which does not wait:
// startHandshake). Then it reads the round's IDs (readIDs). The streams beyond the credit go in
// the next round. Every one of the n opens is answered to the coordinator once: streamReady or
// openFailed.
func (s *clientShard) openStreams(conn *quic.Conn, n int) {
	var buf [openBatch]*quic.Stream
	for n > 0 {
		stream, err := s.openBounded(conn)
		if err != nil {
			s.openFailed(err, n) // no credit for HandshakeTimeout, or the connection is going
			return
		}
		deadline := time.Now().Add(s.rt.HandshakeTimeout)
		started := buf[:0]
		for {
			n--
			if s.startHandshake(stream, deadline) {
				started = append(started, stream)
			}
			if n == 0 {
				break
			}
			if stream, err = conn.OpenStream(); err != nil {
				break // no credit now, or the connection is going: the next round's first open says which
			}
		}
		s.readIDs(conn, started, deadline)
		clear(started)
	}
}

// answerWait is how long readIDs waits, beyond twice the smoothed RTT, for a server to answer a
// round's streams, and answerNext how long it waits for each one after that. quic-go checks a
// read's deadline before the data it holds, so a wait shorter than a scheduling delay would hand
// streams whose ID has arrived to a goroutine for nothing.
const (
	answerWait = time.Millisecond
	answerNext = 250 * time.Microsecond
)

// readIDs reads the IDs the server answers a round's streams with, in the order they were
// opened, on this goroutine, and hands each stream to the coordinator. A server answers in its
// own order, and holds a stream without an ID while it has no room, so one stream's wait must
// not hold up the others: a stream whose ID has not come by the time a round should be answered
// (twice the smoothed RTT and answerWait after its bytes were written, and answerNext for each
// stream after that) waits for the rest of its ID on a goroutine of its own, an idle worker's if
// there is one, until the handshake deadline. The last stream is waited for here. Reading most
// IDs on one goroutine, not a goroutine per stream, is what keeps a fill of a thousand streams
// from leaving a thousand goroutine descriptors behind (the runtime keeps them).
func (s *clientShard) readIDs(conn *quic.Conn, streams []*quic.Stream, deadline time.Time) {
	answerBy := time.Now().Add(2*conn.ConnectionStats().SmoothedRTT + answerWait)
	var id wire.IDReader // one for the batch (it escapes to the heap): a late ID gets its own below
	for i, stream := range streams {
		id = wire.IDReader{}
		if i == len(streams)-1 {
			_ = stream.SetReadDeadline(deadline)
			s.awaitID(stream, &id)
			break
		}
		_ = stream.SetReadDeadline(earlier(later(answerBy, time.Now().Add(answerNext)), deadline))
		got, err := id.Read(stream)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			s.answered(stream, got, err)
			continue
		}
		_ = stream.SetReadDeadline(deadline)
		late := id // the bytes read so far go on with the goroutine that waits for the rest
		read := s.rt.guard(func() { s.awaitID(stream, &late) }, func(err error) { s.openFailed(err, 1) })
		if !s.openers.offer(read) { // offer, unlike tryRun, is safe off the shard's goroutine
			s.rt.Go(read)
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// handshakeBytes is what startHandshake writes: one slice for every stream (quic-go only reads what
// it is given), not an allocation per stream.
var handshakeBytes = []byte{wire.HandshakeByte}

// startHandshake writes the handshake byte on a stream just opened. TryWriteAll queues it unless
// the connection's flow-control window is spent (by transfers on its other streams); Write then
// keeps it until credit comes (quic-go's Write holds a write this small without waiting), under
// the handshake's deadline in case a version of quic-go waits instead. It reports false, having
// discarded the stream and reported the failure, if the write failed. (The read side's deadline
// is readIDs' to set.)
func (s *clientShard) startHandshake(stream *quic.Stream, deadline time.Time) bool {
	err := stream.TryWriteAll(handshakeBytes)
	if errors.Is(err, quic.ErrWouldBlock) {
		_ = stream.SetWriteDeadline(deadline)
		_, err = stream.Write(handshakeBytes)
		_ = stream.SetWriteDeadline(time.Time{})
	}
	if err != nil {
		wire.Discard(stream)
		s.openFailed(err, 1)
		return false
	}
	return true
}

// awaitID reads (the rest of) a stream's ID, waiting until the stream's read deadline, and
// hands the stream on (answered).
func (s *clientShard) awaitID(stream *quic.Stream, id *wire.IDReader) {
	got, err := id.Read(stream)
	s.answered(stream, got, err)
}

// answered hands a stream whose ID was read to the coordinator, which owns it from then on. A
// stream whose ID could not be read (err) is discarded and its open reported failed.
func (s *clientShard) answered(stream *quic.Stream, id string, err error) {
	if err != nil {
		wire.Discard(stream)
		s.openFailed(err, 1)
		return
	}
	_ = stream.SetReadDeadline(time.Time{})
	s.rt.Tell(streamReady{shard: s.self, id: id, stream: stream})
}

// openFailed reports n failed stream opens to the coordinator.
func (s *clientShard) openFailed(err error, n int) {
	s.rt.Tell(openFailed{shard: s.self, err: err, n: n})
}

// openBounded opens a stream at once if the server gives credit, and otherwise waits for credit
// for at most the handshake timeout.
func (s *clientShard) openBounded(conn *quic.Conn) (*quic.Stream, error) {
	stream, err := conn.OpenStream()
	if _, limited := errors.AsType[*quic.StreamLimitReachedError](err); !limited {
		return stream, err
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.rt.HandshakeTimeout)
	defer cancel()
	stream, err = conn.OpenStreamSync(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return nil, fmt.Errorf("%w for %v", errNoCredit, s.rt.HandshakeTimeout)
	}
	return stream, err
}
