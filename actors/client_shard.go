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
	// Dial resolves the server's address anew and dials one QUIC connection. release frees what
	// the connection used (its UDP socket) and is called once the connection is closed.
	Dial func(ctx context.Context) (conn *quic.Conn, release func(), err error)
	// IDTimeout bounds the wait for the server's 4-byte ID on a new stream.
	IDTimeout time.Duration
}

// NewClientShard returns the producer of a client shard: the actor that dials one QUIC
// connection, opens streams on it when the coordinator asks, keeps them idle until they are
// taken, and reports its failure to its parent (the supervisor), which replaces it.
func NewClientShard(cfg ClientShardConfig) actor.Producer {
	return func() actor.Receiver {
		return &clientShard{cfg: cfg, idle: newIdleStreams(nil)}
	}
}

type clientShard struct {
	cfg    ClientShardConfig
	engine *actor.Engine
	self   *actor.PID
	parent *actor.PID
	ctx    context.Context // cancelled when the shard stops: ends its goroutines
	cancel context.CancelFunc
	idle   idleStreams
	failed bool
}

// Reports from the shard's own goroutines.
type (
	dialed       struct{ conn *quic.Conn }
	dialFailed   struct{ err error }
	connLost     struct{ err error }
	streamOpened struct {
		id     string
		stream *quic.Stream
	}
	streamFailed struct{ err error }
)

func (s *clientShard) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		s.engine, s.self, s.parent = c.Engine(), c.PID(), c.Parent()
		s.idle.start(c, s.cfg.Coordinator)
		s.ctx, s.cancel = context.WithCancel(s.cfg.Ctx)
		s.cfg.Go(s.cfg.Guard(s.dial, s.lost))
	case actor.Stopped:
		s.stop()
	case dialed:
		if s.failed || s.ctx.Err() != nil {
			return // the dial goroutine closes the connection when ctx is done
		}
		s.idle.conn = m.conn
		s.cfg.Log.Debug("shard connected", "slot", s.cfg.Slot, "remote", m.conn.RemoteAddr().String())
		c.Send(s.cfg.Coordinator, messages.ShardUp{Shard: s.self, Slot: s.cfg.Slot})
		c.Send(s.parent, messages.ShardHealthy{Shard: s.self, Slot: s.cfg.Slot})
	case dialFailed:
		s.fail(c, m.err)
	case connLost:
		s.fail(c, m.err)
	case messages.Open:
		s.open(c, m.N)
	case streamOpened:
		if s.failed || s.idle.conn == nil {
			Discard(m.stream)
			return
		}
		if !s.idle.store(m.id, m.stream) {
			c.Send(s.cfg.Coordinator, messages.OpenFailed{Shard: s.self, N: 1, Err: errDuplicateID(m.id)})
		}
	case streamFailed:
		c.Send(s.cfg.Coordinator, messages.OpenFailed{Shard: s.self, N: 1, Err: m.err})
	case messages.Take:
		s.idle.take(m)
	case messages.Discard:
		s.idle.discardAndReport(m.IDs)
	case peerStopped:
		s.idle.peerStopped(m)
	}
}

// dial runs in its own goroutine for the life of the connection: it dials, reports, then waits
// for the connection to die (reported as connLost) or for the shard to stop (it closes the
// connection then, so a connection is never leaked even if the shard stopped mid-dial).
func (s *clientShard) dial() {
	conn, release, err := s.cfg.Dial(s.ctx)
	if err != nil {
		s.engine.Send(s.self, dialFailed{err: err})
		return
	}
	defer release()
	s.engine.Send(s.self, dialed{conn: conn})
	select {
	case <-conn.Context().Done():
		s.engine.Send(s.self, connLost{err: context.Cause(conn.Context())})
	case <-s.ctx.Done():
		_ = conn.CloseWithError(ConnCodeClosed, "quicpool: pool closed")
	}
}

// open starts n stream opens, each in its own goroutine.
func (s *clientShard) open(c *actor.Context, n int) {
	conn := s.idle.conn
	if conn == nil || s.failed {
		c.Send(s.cfg.Coordinator, messages.OpenFailed{Shard: s.self, N: n, Err: errShardDown})
		return
	}
	for range n {
		s.cfg.Go(s.cfg.Guard(func() { s.openStream(conn) }, func(err error) {
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
	deadline := time.Now().Add(s.cfg.IDTimeout)
	_ = stream.SetDeadline(deadline)
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

// fail discards the idle streams, tells the coordinator they are gone and the supervisor that
// this shard needs replacing.
func (s *clientShard) fail(c *actor.Context, err error) {
	if s.failed {
		return
	}
	s.failed = true
	ids := s.idle.discard(nil)
	s.cfg.Log.Warn("shard failed", "slot", s.cfg.Slot, "err", err, "discarded", len(ids))
	c.Send(s.cfg.Coordinator, messages.ShardDown{Shard: s.self, IDs: ids, Err: err})
	c.Send(s.parent, messages.ShardFailed{Shard: s.self, Slot: s.cfg.Slot, Err: err})
}

// lost reports a failure of the shard's connection goroutine.
func (s *clientShard) lost(err error) { s.engine.Send(s.self, connLost{err: err}) }

func (s *clientShard) onPanic(c *actor.Context, err error) { s.fail(c, err) }

func (s *clientShard) stop() {
	if s.cancel != nil {
		s.cancel()
	}
	if ids := s.idle.discard(nil); !s.failed && s.idle.conn != nil {
		s.engine.Send(s.cfg.Coordinator, messages.ShardDown{Shard: s.self, IDs: ids})
	}
}
