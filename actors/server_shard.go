package actors

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool/internal/wire"
	"github.com/quicpool/quicpool/messages"
)

// serverShard owns one accepted client connection: it accepts the client's streams, reads each
// one's handshake byte and hands it to the coordinator (which issues its ID and owns it from then
// on), and reports the connection's death to the supervisor, which frees its slot.
type serverShard struct {
	shard
	conn   *quic.Conn
	closed chan struct{} // closed once the shard has closed conn; the listener waits for it
}

func newServerShard(rt *runtime, slot int, conn *quic.Conn, closed chan struct{}) actor.Producer {
	return func() actor.Receiver {
		return &serverShard{shard: shard{rt: rt, slot: slot}, conn: conn, closed: closed}
	}
}

func (s *serverShard) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		s.start(c)
	case actor.Stopped:
		s.stopped()
	case connLost:
		s.fail(m.err)
	case pathMoved:
		s.pathMoved(m.addr)
	}
}

func (s *serverShard) start(c *actor.Context) {
	s.started(c)
	s.upAt = time.Now()
	s.rt.emit(s.engine, messages.Event{Kind: messages.EventShardUp, Slot: s.slot, Addr: s.conn.RemoteAddr().String()})
	s.rt.Tell(shardUp{shard: s.self, slot: s.slot, conn: s.conn})
	s.rt.Go(s.rt.guard(s.watch, s.lost))
	s.rt.Go(s.rt.guard(s.accept, s.lost))
}

// watch watches the connection (watchConn) until it dies or the shard stops, then tells the
// listener the connection is closed.
func (s *serverShard) watch() {
	defer close(s.closed)
	s.watchConn(s.conn, "quicpool: connection closed by the server pool")
}

// handshakesAtOnce is how many of a connection's streams may wait for their handshake byte on a
// worker at a time. A peer that opens streams and sends nothing stalls only its own
// connection's accept loop, and costs handshakesAtOnce goroutines, not one per stream.
const handshakesAtOnce = 32

// byteWithStream is how long the accept loop waits for a stream's handshake byte itself before
// it leaves the stream to a worker. A client's handshake byte comes in the frame that opens its
// stream, so it has almost always arrived when the stream is accepted (a lost or reordered
// packet is the exception); reading it in the loop saves a worker's wake per stream.
const byteWithStream = 200 * time.Microsecond

// handshakeBatch is the most handshaken streams the accept loop hands the coordinator in one
// message.
const handshakeBatch = 32

// accept takes the client's new streams and reads each one's handshake byte: in the loop if it
// arrives within byteWithStream, otherwise on a worker, at most handshakesAtOnce at a time (while
// that many wait for their byte, accept waits too). The streams accepted back to back, a client's
// round of opens, go to the coordinator in one message (up to handshakeBatch): one coordinator
// wake for the round instead of one per stream.
func (s *serverShard) accept() {
	readers := newWorkers(s.rt, s.ctx, handshakesAtOnce)
	noWait, cancel := context.WithCancel(context.Background())
	cancel() // AcceptStream(noWait) takes a stream that is already there, or fails at once
	var ready []*quic.Stream
	ctx := s.ctx
	for {
		stream, err := s.conn.AcceptStream(ctx)
		if err != nil {
			s.handshaken(ready)
			ready = nil
			if ctx == noWait && errors.Is(err, context.Canceled) {
				ctx = s.ctx // the round is over: wait for the next stream
				continue
			}
			return // the connection died (watch reports it) or the shard stopped
		}
		ctx = noWait
		_ = stream.SetReadDeadline(time.Now().Add(byteWithStream))
		switch err := wire.ReadHandshake(stream); {
		case err == nil:
			_ = stream.SetReadDeadline(time.Time{})
			if ready = append(ready, stream); len(ready) == handshakeBatch {
				s.handshaken(ready)
				ready = nil
			}
		case errors.Is(err, os.ErrDeadlineExceeded):
			s.handshaken(ready) // first: the worker may have to wait for room
			ready = nil
			handshake := s.rt.guard(func() { s.handshake(stream) }, func(err error) { s.reject(stream, err) })
			if !readers.run(handshake) {
				wire.Discard(stream)
				return
			}
		default:
			s.reject(stream, err)
		}
	}
}

// handshake waits up to HandshakeTimeout for the handshake byte of a stream whose byte did not
// come with it.
func (s *serverShard) handshake(stream *quic.Stream) {
	_ = stream.SetReadDeadline(time.Now().Add(s.rt.HandshakeTimeout))
	if err := wire.ReadHandshake(stream); err != nil {
		s.reject(stream, err)
		return
	}
	_ = stream.SetReadDeadline(time.Time{})
	s.handshaken([]*quic.Stream{stream})
}

// handshaken hands streams whose handshake byte was read to the coordinator, which issues their
// IDs.
func (s *serverShard) handshaken(streams []*quic.Stream) {
	if len(streams) > 0 {
		s.rt.Tell(handshaken{shard: s.self, streams: streams})
	}
}

// reject resets a stream without a valid handshake byte both ways and reports it.
func (s *serverShard) reject(stream *quic.Stream, err error) {
	wire.Discard(stream)
	s.rt.Tell(handshakeFailed{shard: s.self, err: err})
}

// pathMoved checks a client connection that moved to another address (a migration, a NAT
// rebinding) against the allow-list again, and refuses it if the new address is not allowed.
func (s *serverShard) pathMoved(addr net.Addr) {
	s.rt.Log.Info("client connection moved", "slot", s.slot, "remote", addr.String())
	if s.rt.Allow == nil {
		return
	}
	if err := s.rt.Allow(addr); err != nil {
		err = fmt.Errorf("connection moved to %s: %w", addr, err)
		s.engine.Send(s.rt.supervisor, refusal{addr: addr.String(), err: err, reason: refusedMoved}) // counted, logged, broadcast
		s.failClosing(wire.ConnCodeRefused, err)
	}
}
