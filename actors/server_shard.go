package actors

import (
	"context"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool/messages"
)

// ServerShardConfig configures one server shard.
type ServerShardConfig struct {
	Runtime
	Slot        int
	Coordinator *actor.PID
	// Conn is the accepted client connection the shard owns from now on.
	Conn *quic.Conn
	// HandshakeTimeout bounds the wait for a new stream's handshake byte and the write of its ID.
	HandshakeTimeout time.Duration
	// HoldTimeout bounds how long a handshaken stream waits for room in a full pool before it is
	// refused.
	HoldTimeout time.Duration
}

// NewServerShard returns the producer of a server shard: the actor that owns one accepted client
// connection, accepts its streams, labels each with an ID from the coordinator, keeps them idle
// until they are taken, and reports to its parent when the connection dies.
func NewServerShard(cfg ServerShardConfig) actor.Producer {
	return func() actor.Receiver {
		return &serverShard{cfg: cfg, idle: newIdleStreams(cfg.Conn)}
	}
}

type serverShard struct {
	cfg    ServerShardConfig
	engine *actor.Engine
	self   *actor.PID
	parent *actor.PID
	ctx    context.Context
	cancel context.CancelFunc
	idle   idleStreams
	failed bool
	active time.Time // when the shard last told its parent it accepted a stream
}

// streamAccepted reports a stream whose handshake finished with the reserved ID.
type streamAccepted struct {
	id     string
	stream *quic.Stream
}

func (s *serverShard) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		s.engine, s.self, s.parent = c.Engine(), c.PID(), c.Parent()
		s.idle.start(c, s.cfg.Coordinator)
		s.ctx, s.cancel = context.WithCancel(s.cfg.Ctx)
		c.Send(s.cfg.Coordinator, messages.ShardUp{Shard: s.self, Slot: s.cfg.Slot})
		c.Send(s.parent, messages.ShardHealthy{Shard: s.self, Slot: s.cfg.Slot})
		s.cfg.Go(s.cfg.Guard(s.watch, s.lost))
		s.cfg.Go(s.cfg.Guard(s.accept, s.lost))
	case actor.Stopped:
		s.stop()
	case connLost:
		s.fail(c, m.err)
	case streamAccepted:
		if s.failed || !s.idle.store(m.id, m.stream) {
			Discard(m.stream)
			c.Send(s.cfg.Coordinator, messages.ReleaseID{ID: m.id})
			return
		}
		if now := time.Now(); now.Sub(s.active) >= time.Second {
			s.active = now
			c.Send(s.parent, messages.ShardActive{Shard: s.self, Slot: s.cfg.Slot})
		}
	case messages.Take:
		s.idle.take(m)
	case messages.Discard:
		s.idle.discardAndReport(m.IDs)
	case peerStopped:
		s.idle.peerStopped(m)
	}
}

// watch reports the death of the connection, or closes it when the shard stops.
func (s *serverShard) watch() {
	conn := s.cfg.Conn
	select {
	case <-conn.Context().Done():
		s.engine.Send(s.self, connLost{err: context.Cause(conn.Context())})
	case <-s.ctx.Done():
		_ = conn.CloseWithError(ConnCodeClosed, "quicpool: pool closed")
	}
}

// accept takes the client's new streams and handshakes each in its own goroutine.
func (s *serverShard) accept() {
	for {
		stream, err := s.cfg.Conn.AcceptStream(s.ctx)
		if err != nil {
			return // the connection died (watch reports it) or the shard stopped
		}
		s.cfg.Go(s.cfg.Guard(func() { s.handshake(stream) }, func(err error) { s.reject(stream, err) }))
	}
}

// handshake runs the server side of the stream handshake: read 0x00, reserve an ID with the
// coordinator, write the ID. A stream that fails any step is reset both ways and counted.
func (s *serverShard) handshake(stream *quic.Stream) {
	_ = stream.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	if err := ReadHandshake(stream); err != nil {
		s.reject(stream, err)
		return
	}
	_ = stream.SetDeadline(time.Time{})
	id := s.reserve(stream)
	if id == "" {
		s.reject(stream, messages.ErrPoolFull)
		return
	}
	raw, _ := ParseID(id)
	_ = stream.SetWriteDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	if _, err := stream.Write(raw[:]); err != nil {
		s.engine.Send(s.cfg.Coordinator, messages.ReleaseID{ID: id})
		s.reject(stream, err)
		return
	}
	_ = stream.SetDeadline(time.Time{})
	s.engine.Send(s.self, streamAccepted{id: id, stream: stream})
}

// reserve asks the coordinator for the stream's ID and waits while the pool is full, up to
// HoldTimeout, or until the client gives up on the stream or the shard stops. It returns "" when
// no ID came.
func (s *serverShard) reserve(stream *quic.Stream) string {
	reply := make(chan string, 1)
	s.engine.Send(s.cfg.Coordinator, messages.ReserveID{Shard: s.self, Reply: reply})
	timer := time.NewTimer(s.cfg.HoldTimeout)
	defer timer.Stop()
	select {
	case id := <-reply:
		return id
	case <-timer.C:
	case <-stream.Context().Done():
	case <-s.ctx.Done():
	}
	return messages.AbandonID(reply)
}

func (s *serverShard) reject(stream *quic.Stream, err error) {
	Discard(stream)
	s.engine.Send(s.cfg.Coordinator, messages.StreamDiscarded{Err: err})
}

func (s *serverShard) fail(c *actor.Context, err error) {
	if s.failed {
		return
	}
	s.failed = true
	ids := s.idle.discard(nil)
	s.cfg.Log.Info("client connection closed", "slot", s.cfg.Slot, "err", err, "discarded", len(ids))
	c.Send(s.cfg.Coordinator, messages.ShardDown{Shard: s.self, IDs: ids, Err: err})
	c.Send(s.parent, messages.ShardFailed{Shard: s.self, Slot: s.cfg.Slot, Err: err})
}

// lost reports a failure of one of the connection's goroutines.
func (s *serverShard) lost(err error) { s.engine.Send(s.self, connLost{err: err}) }

func (s *serverShard) onPanic(c *actor.Context, err error) { s.fail(c, err) }

// stop closes the connection before the shard is gone, so that the listener's transport, which
// is closed after every shard has stopped, never drops a connection without CONNECTION_CLOSE.
func (s *serverShard) stop() {
	s.cancel()
	if ids := s.idle.discard(nil); !s.failed {
		s.engine.Send(s.cfg.Coordinator, messages.ShardDown{Shard: s.self, IDs: ids})
	}
	_ = s.cfg.Conn.CloseWithError(ConnCodeClosed, "quicpool: connection closed by the server pool")
}
