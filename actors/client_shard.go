package actors

import (
	"context"
	"errors"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool/messages"
)

// errShardDown answers an Open sent to a shard that has no connection (yet, or any more).
var errShardDown = errors.New("quicpool: shard has no connection")

// ClientShardConfig configures one client shard.
type ClientShardConfig struct {
	Runtime
	Slot        int
	Coordinator *actor.PID
	Supervisor  *actor.PID
	// Dial resolves the server's address anew and dials one QUIC connection. release frees what
	// the connection used (its UDP socket) and is called once the connection is closed.
	Dial func(ctx context.Context) (conn *quic.Conn, release func(), err error)
	// IDTimeout bounds the wait for the server's 4-byte ID on a new stream.
	IDTimeout time.Duration
}

// NewClientShard returns the producer of a client shard: the actor that dials one QUIC
// connection, opens streams on it when the coordinator asks, keeps them idle until they are
// taken, and fails (to be replaced by the supervisor) when the connection dies.
func NewClientShard(cfg ClientShardConfig) actor.Producer {
	return func() actor.Receiver {
		return &clientShard{cfg: cfg, shard: shard{Runtime: cfg.Runtime, slot: cfg.Slot,
			coordinator: cfg.Coordinator, supervisor: cfg.Supervisor, idle: newIdleStreams(nil)}}
	}
}

type clientShard struct {
	shard
	cfg ClientShardConfig
}

// Reports from the shard's own goroutines.
type (
	dialed       struct{ conn *quic.Conn }
	streamOpened struct {
		id     string
		stream *quic.Stream
	}
	streamFailed struct{ err error }
)

func (s *clientShard) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		s.started(c)
		s.Go(s.Guard(s.dial, s.lost))
	case actor.Stopped:
		s.stop()
	case dialed:
		if s.failed != nil {
			return // the dial goroutine closes the connection when the shard stops
		}
		s.idle.conn = m.conn
		s.Log.Info("connected", "slot", s.slot, "remote", m.conn.RemoteAddr().String())
		s.engine.Send(s.coordinator, messages.ShardUp{Shard: s.self, Slot: s.slot})
		s.engine.Send(s.supervisor, messages.ShardHealthy{Shard: s.self, Slot: s.slot})
	case messages.Open:
		s.open(m.N)
	case streamOpened:
		switch {
		case s.failed != nil || s.idle.conn == nil:
			Discard(m.stream)
		case !s.idle.store(m.id, m.stream):
			s.engine.Send(s.coordinator, messages.OpenFailed{Shard: s.self, N: 1, Err: errDuplicateID(m.id)})
		}
	case streamFailed:
		s.engine.Send(s.coordinator, messages.OpenFailed{Shard: s.self, N: 1, Err: m.err})
	default:
		s.receive(m)
	}
}

// dial runs in its own goroutine for the life of the connection: it dials, reports, then waits
// for the connection to die (reported as connLost) or for the shard to stop (it closes the
// connection then, so a connection is never leaked even if the shard stopped mid-dial).
func (s *clientShard) dial() {
	conn, release, err := s.cfg.Dial(s.ctx)
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
		_ = conn.CloseWithError(ConnCodeClosed, "quicpool: pool closed")
	}
}

// open starts n stream opens, each in its own goroutine.
func (s *clientShard) open(n int) {
	conn := s.idle.conn
	if conn == nil || s.failed != nil {
		s.engine.Send(s.coordinator, messages.OpenFailed{Shard: s.self, N: n, Err: errShardDown})
		return
	}
	for range n {
		s.Go(s.Guard(func() { s.openStream(conn) }, func(err error) {
			s.engine.Send(s.self, streamFailed{err: err})
		}))
	}
}

// openStream opens one stream and runs the client side of the handshake: write 0x00, read the
// 4-byte ID. It blocks while the server's stream limit is reached.
func (s *clientShard) openStream(conn *quic.Conn) {
	stream, err := conn.OpenStreamSync(s.ctx)
	if err != nil {
		s.engine.Send(s.self, streamFailed{err: err})
		return
	}
	_ = stream.SetDeadline(time.Now().Add(s.cfg.IDTimeout))
	id, err := "", error(nil)
	if _, err = stream.Write([]byte{HandshakeByte}); err == nil {
		id, err = ReadID(stream)
	}
	if err != nil {
		Discard(stream)
		s.engine.Send(s.self, streamFailed{err: err})
		return
	}
	_ = stream.SetDeadline(time.Time{})
	s.engine.Send(s.self, streamOpened{id: id, stream: stream})
}
