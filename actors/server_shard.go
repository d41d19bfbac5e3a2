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
	Supervisor  *actor.PID
	// Conn is the accepted client connection the shard owns from now on.
	Conn *quic.Conn
	// Closed is closed once the shard has closed Conn; the listener waits for it before it
	// closes its transport.
	Closed chan struct{}
	// HandshakeTimeout bounds the wait for a new stream's handshake byte and the write of its ID.
	HandshakeTimeout time.Duration
	// HoldTimeout bounds how long a handshaken stream waits for room in a full pool before it is
	// refused.
	HoldTimeout time.Duration
}

// NewServerShard returns the producer of a server shard: the actor that owns one accepted client
// connection, accepts its streams, labels each with an ID from the coordinator, keeps them idle
// until they are taken, and fails (freeing its slot) when the connection dies.
func NewServerShard(cfg ServerShardConfig) actor.Producer {
	return func() actor.Receiver {
		return &serverShard{cfg: cfg, shard: shard{Runtime: cfg.Runtime, slot: cfg.Slot,
			coordinator: cfg.Coordinator, supervisor: cfg.Supervisor, idle: newIdleStreams(cfg.Conn)}}
	}
}

type serverShard struct {
	shard
	cfg ServerShardConfig
}

// streamAccepted reports a stream whose handshake finished with the reserved ID.
type streamAccepted struct {
	id     string
	stream *quic.Stream
}

func (s *serverShard) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		s.started(c)
		s.engine.Send(s.coordinator, messages.ShardUp{Shard: s.self, Slot: s.slot})
		s.engine.Send(s.supervisor, messages.ShardHealthy{Shard: s.self, Slot: s.slot})
		s.Go(s.Guard(s.watch, s.lost))
		s.Go(s.Guard(s.accept, s.lost))
	case actor.Stopped:
		s.stop()
	case streamAccepted:
		if s.failed != nil || !s.idle.store(m.id, m.stream) {
			Discard(m.stream)
			s.engine.Send(s.coordinator, messages.ReleaseID{ID: m.id})
			return
		}
		s.touch()
	default:
		s.receive(m)
	}
}

// watch reports the death of the connection, or closes it when the shard stops; either way it
// then tells the listener the connection is closed.
func (s *serverShard) watch() {
	defer close(s.cfg.Closed)
	conn := s.cfg.Conn
	select {
	case <-conn.Context().Done():
		s.lost(context.Cause(conn.Context()))
	case <-s.ctx.Done():
		_ = conn.CloseWithError(ConnCodeClosed, "quicpool: connection closed by the server pool")
	}
}

// accept takes the client's new streams and handshakes each in its own goroutine.
func (s *serverShard) accept() {
	for {
		stream, err := s.cfg.Conn.AcceptStream(s.ctx)
		if err != nil {
			return // the connection died (watch reports it) or the shard stopped
		}
		s.Go(s.Guard(func() { s.handshake(stream) }, func(err error) { s.reject(stream, err) }))
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
		s.engine.Send(s.coordinator, messages.ReleaseID{ID: id})
		s.reject(stream, err)
		return
	}
	_ = stream.SetWriteDeadline(time.Time{})
	s.engine.Send(s.self, streamAccepted{id: id, stream: stream})
}

// reserve asks the coordinator for the stream's ID and waits while the pool is full, up to
// HoldTimeout, or until the client gives up on the stream or the shard stops. It returns "" when
// no ID came.
func (s *serverShard) reserve(stream *quic.Stream) string {
	reply := make(chan string, 1)
	s.engine.Send(s.coordinator, messages.ReserveID{Shard: s.self, Reply: reply})
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
	s.engine.Send(s.coordinator, messages.StreamDiscarded{Err: err})
}
