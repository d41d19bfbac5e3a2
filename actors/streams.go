package actors

import (
	"context"
	"errors"

	"github.com/anthdm/hollywood/actor"
	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool/messages"
)

// idleStreams is the map of idle streams a shard owns, with the operations both kinds of shard
// share: store a new stream, hand one out, discard some or all, and react when the peer stops
// reading an idle stream.
//
// Every stored stream is watched with context.AfterFunc on its context, which quic-go cancels
// when the peer sends STOP_SENDING: no goroutine per idle stream.
type idleStreams struct {
	engine      *actor.Engine
	self        *actor.PID
	coordinator *actor.PID
	conn        *quic.Conn
	streams     map[string]idleStream
}

type idleStream struct {
	stream     *quic.Stream
	unwatch    func() bool
	peerClosed bool // the peer stopped reading it; reachable by ID only
}

// peerStopped reports that the peer stopped reading an idle stream.
type peerStopped struct {
	id     string
	stream *quic.Stream
}

func newIdleStreams(conn *quic.Conn) idleStreams {
	return idleStreams{conn: conn, streams: make(map[string]idleStream)}
}

// start binds the store to its shard; called on Started.
func (is *idleStreams) start(c *actor.Context, coordinator *actor.PID) {
	is.engine, is.self, is.coordinator = c.Engine(), c.PID(), coordinator
}

// store keeps s under id and tells the coordinator; a stream whose ID is already stored here is
// discarded and reported false.
func (is *idleStreams) store(id string, s *quic.Stream) bool {
	if _, dup := is.streams[id]; dup {
		Discard(s)
		return false
	}
	is.streams[id] = idleStream{stream: s, unwatch: is.watch(id, s)}
	is.engine.Send(is.coordinator, messages.StreamIdle{Shard: is.self, ID: id})
	return true
}

// watch reports, once, that the peer stopped reading s.
func (is *idleStreams) watch(id string, s *quic.Stream) func() bool {
	engine, self := is.engine, is.self
	return context.AfterFunc(s.Context(), func() { engine.Send(self, peerStopped{id: id, stream: s}) })
}

// take hands stream m.ID to the request and reports whether it did. If the stream is not here
// any more the request goes back to the coordinator; if its caller has stopped waiting the
// stream stays, and the coordinator is told it is back.
func (is *idleStreams) take(m messages.Take) bool {
	e, ok := is.streams[m.ID]
	if !ok {
		is.engine.Send(is.coordinator, messages.TakeMissed{ID: m.ID, Get: m.Get})
		return false
	}
	watching := e.unwatch() // before the hand-out: the caller may close the stream at once
	if m.Get.Deliver(messages.Stream{ID: m.ID, Stream: e.stream, Conn: is.conn}) {
		delete(is.streams, m.ID)
		return true
	}
	if watching {
		e.unwatch = is.watch(m.ID, e.stream)
		is.streams[m.ID] = e
	}
	is.engine.Send(is.coordinator, messages.StreamIdle{Shard: is.self, ID: m.ID, Returned: true, PeerClosed: e.peerClosed})
	return false
}

// discard closes the idle streams with the given IDs (all of them for nil) and returns the IDs
// it closed.
func (is *idleStreams) discard(ids []string) []string {
	if ids == nil {
		ids = make([]string, 0, len(is.streams))
		for id := range is.streams {
			ids = append(ids, id)
		}
	}
	closed := ids[:0:0]
	for _, id := range ids {
		if e, ok := is.streams[id]; ok {
			e.unwatch()
			Discard(e.stream)
			delete(is.streams, id)
			closed = append(closed, id)
		}
	}
	return closed
}

// forget drops every idle stream without resetting it, for a shard whose connection is being
// closed: the CONNECTION_CLOSE ends them all at once, whereas resetting each first would make
// the peer purge and refill into a connection about to die. It returns their IDs.
func (is *idleStreams) forget() []string {
	ids := make([]string, 0, len(is.streams))
	for id, e := range is.streams {
		e.unwatch()
		ids = append(ids, id)
	}
	clear(is.streams)
	return ids
}

// discardAndReport discards streams and tells the coordinator which ones are gone.
func (is *idleStreams) discardAndReport(ids []string) {
	if closed := is.discard(ids); len(closed) > 0 {
		is.engine.Send(is.coordinator, messages.StreamsPurged{Shard: is.self, IDs: closed})
	}
}

// peerStopped handles a peer that stopped reading an idle stream. If the peer's pool discarded
// it (StreamCodeDiscarded) it is dead and goes at once. Otherwise the peer's application closed a
// stream this side has not taken yet: it may still carry data for the caller who will ask for its
// ID, so the coordinator stops counting it as idle but keeps it reachable by ID for a while.
// A connection that dies cancels every stream's context too: that is the connection watcher's
// business, not this.
func (is *idleStreams) peerStopped(m peerStopped) {
	e, ok := is.streams[m.id]
	if !ok || e.stream != m.stream || is.conn == nil || is.conn.Context().Err() != nil {
		return // handed out or discarded meanwhile, or the connection is dying
	}
	var se *quic.StreamError
	if !errors.As(context.Cause(m.stream.Context()), &se) || !se.Remote {
		return
	}
	if se.ErrorCode == StreamCodeDiscarded {
		is.discardAndReport([]string{m.id})
		return
	}
	e.peerClosed = true
	is.streams[m.id] = e
	is.engine.Send(is.coordinator, messages.StreamClosedByPeer{Shard: is.self, ID: m.id})
}
