package actors

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool/internal/core"
	"github.com/quicpool/quicpool/internal/wire"
	"github.com/quicpool/quicpool/messages"
)

// serverShard owns one accepted client connection: it accepts the client's streams, handshakes
// each in a goroutine (the ID comes from the coordinator, which owns the stream once the ID is
// written), and reports the connection's death to the supervisor, which frees its slot.
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
	s.engine.Send(s.rt.coordinator, shardUp{shard: s.self, slot: s.slot, conn: s.conn})
	s.rt.Go(s.rt.guard(s.watch, s.lost))
	s.rt.Go(s.rt.guard(s.accept, s.lost))
	s.rt.Go(s.rt.guard(func() { s.watchLiveness(s.conn) }, s.lost))
}

// watch reports the death of the connection, or closes it when the shard stops; either way it
// then tells the listener the connection is closed.
func (s *serverShard) watch() {
	defer close(s.closed)
	select {
	case <-s.conn.Context().Done():
		s.lost(context.Cause(s.conn.Context()))
	case <-s.ctx.Done():
		s.closeConn(s.ctx, s.conn, "quicpool: connection closed by the server pool")
	}
}

// accept takes the client's new streams and handshakes each in its own goroutine.
func (s *serverShard) accept() {
	for {
		stream, err := s.conn.AcceptStream(s.ctx)
		if err != nil {
			return // the connection died (watch reports it) or the shard stopped
		}
		s.rt.Go(s.rt.guard(func() { s.handshake(stream) }, func(err error) { s.reject(stream, err) }))
	}
}

// handshake runs the server side of the stream handshake: read the handshake byte, reserve an ID
// with the coordinator, write the ID, and hand the stream to the coordinator. A stream that fails
// any step is reset both ways and counted.
func (s *serverShard) handshake(stream *quic.Stream) {
	_ = stream.SetDeadline(time.Now().Add(s.rt.HandshakeTimeout))
	if err := wire.ReadHandshake(stream); err != nil {
		s.reject(stream, err)
		return
	}
	_ = stream.SetDeadline(time.Time{})
	id := s.reserve(stream)
	if id == "" {
		s.reject(stream, core.ErrPoolFull)
		return
	}
	raw, _ := wire.ParseID(id)
	_ = stream.SetWriteDeadline(time.Now().Add(s.rt.HandshakeTimeout))
	if _, err := stream.Write(raw[:]); err != nil {
		s.engine.Send(s.rt.coordinator, releaseID{shard: s.self, id: id})
		s.reject(stream, err)
		return
	}
	_ = stream.SetWriteDeadline(time.Time{})
	s.engine.Send(s.rt.coordinator, streamReady{shard: s.self, id: id, stream: stream})
}

// reserve asks the coordinator for the stream's ID and waits while the pool is full, up to
// HoldTimeout, or until the client gives up on the stream or the shard stops. It returns "" when
// no ID came.
func (s *serverShard) reserve(stream *quic.Stream) string {
	reply := make(chan string, 1)
	s.engine.Send(s.rt.coordinator, reserveID{shard: s.self, reply: reply})
	timer := time.NewTimer(s.rt.HoldTimeout)
	defer timer.Stop()
	select {
	case id := <-reply:
		return id
	case <-timer.C:
	case <-stream.Context().Done():
	case <-s.ctx.Done():
	}
	return abandonID(reply)
}

func (s *serverShard) reject(stream *quic.Stream, err error) {
	wire.Discard(stream)
	s.engine.Send(s.rt.coordinator, handshakeFailed{shard: s.self, err: err})
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
