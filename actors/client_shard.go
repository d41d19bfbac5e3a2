package actors

import (
	"context"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool/internal/wire"
	"github.com/quicpool/quicpool/messages"
)

// clientShard owns one client connection: it dials it, opens streams on it when the coordinator
// asks (each opened and handshaken in a goroutine, which hands the stream straight to the
// coordinator), and reports the connection's death to the supervisor, which replaces the shard.
type clientShard struct {
	shard
	conn *quic.Conn
}

func newClientShard(rt *runtime, slot int) actor.Producer {
	return func() actor.Receiver { return &clientShard{shard: shard{rt: rt, slot: slot}} }
}

func (s *clientShard) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		s.started(c)
		s.rt.Go(s.rt.guard(s.dial, s.lost))
	case actor.Stopped:
		s.cancel()
	case dialed:
		s.up(m.conn)
	case openStreams:
		s.open(m.n)
	case connLost:
		s.fail(m.err)
	}
}

// dial runs in its own goroutine for the life of the connection: it dials, reports, then waits
// for the connection to die (reported as connLost) or for the shard to stop (it closes the
// connection then, so a connection is never leaked, even if the shard stopped mid-dial).
func (s *clientShard) dial() {
	conn, release, err := s.rt.dial(s.ctx)
	if err != nil {
		s.lost(err)
		return
	}
	defer release()
	s.engine.Send(s.self, dialed{conn: conn})
	select {
	case <-conn.Context().Done():
		s.lost(context.Cause(conn.Context()))
	case <-s.ctx.Done():
		_ = conn.CloseWithError(wire.ConnCodeClosed, "quicpool: pool closed")
	}
}

func (s *clientShard) up(conn *quic.Conn) {
	if s.failed {
		return // the dial goroutine closes the connection when the shard stops
	}
	s.conn, s.upAt = conn, time.Now()
	s.rt.Log.Info("connected", "slot", s.slot, "remote", conn.RemoteAddr().String())
	s.rt.emit(s.engine, messages.Event{Kind: messages.EventShardUp, Slot: s.slot, Addr: conn.RemoteAddr().String()})
	s.engine.Send(s.rt.coordinator, shardUp{shard: s.self, slot: s.slot, conn: conn})
}

// open starts n stream opens, each in its own goroutine.
func (s *clientShard) open(n int) {
	if s.failed || s.conn == nil {
		return // the coordinator forgets what it asked of this shard when the shard goes down
	}
	conn := s.conn
	for range n {
		s.rt.Go(s.rt.guard(func() { s.openStream(conn) }, func(err error) {
			s.engine.Send(s.rt.coordinator, openFailed{shard: s.self, err: err})
		}))
	}
}

// openStream opens one stream and runs the client side of the handshake: write the handshake
// byte, read the 4-byte ID. Then the stream is the coordinator's. It blocks while the server's
// stream limit is reached.
func (s *clientShard) openStream(conn *quic.Conn) {
	stream, err := conn.OpenStreamSync(s.ctx)
	if err != nil {
		s.engine.Send(s.rt.coordinator, openFailed{shard: s.self, err: err})
		return
	}
	_ = stream.SetDeadline(time.Now().Add(s.rt.HandshakeTimeout))
	id, err := "", error(nil)
	if _, err = stream.Write([]byte{wire.HandshakeByte}); err == nil {
		id, err = wire.ReadID(stream)
	}
	if err != nil {
		wire.Discard(stream)
		s.engine.Send(s.rt.coordinator, openFailed{shard: s.self, err: err})
		return
	}
	_ = stream.SetDeadline(time.Time{})
	s.engine.Send(s.rt.coordinator, streamReady{shard: s.self, id: id, stream: stream})
}
