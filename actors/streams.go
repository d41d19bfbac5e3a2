package actors

import (
	"github.com/anthdm/hollywood/actor"
	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool/messages"
)

// idleStreams is the map of idle streams a shard owns, with the three operations both kinds of
// shard share: store a new stream, hand one out, discard some or all.
type idleStreams struct {
	conn    *quic.Conn
	streams map[string]*quic.Stream
}

// store keeps s under id and tells the coordinator; a stream whose ID is already stored here is
// discarded and reported false.
func (is *idleStreams) store(c *actor.Context, coordinator *actor.PID, id string, s *quic.Stream) bool {
	if _, dup := is.streams[id]; dup {
		Discard(s)
		return false
	}
	is.streams[id] = s
	c.Send(coordinator, messages.StreamIdle{Shard: c.PID(), ID: id})
	return true
}

// take hands stream id to the request. If the stream is not here any more the request goes back
// to the coordinator; if its caller has stopped waiting the stream stays idle.
func (is *idleStreams) take(c *actor.Context, coordinator *actor.PID, m messages.Take) {
	s, ok := is.streams[m.ID]
	if !ok {
		c.Send(coordinator, messages.TakeMissed{ID: m.ID, Get: m.Get})
		return
	}
	if m.Get.Deliver(messages.Stream{ID: m.ID, Stream: s, Conn: is.conn}) {
		delete(is.streams, m.ID)
		return
	}
	c.Send(coordinator, messages.StreamIdle{Shard: c.PID(), ID: m.ID, Returned: true})
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
		if s, ok := is.streams[id]; ok {
			Discard(s)
			delete(is.streams, id)
			closed = append(closed, id)
		}
	}
	return closed
}
