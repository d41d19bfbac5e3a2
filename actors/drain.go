package actors

import (
	"slices"
	"time"

	"github.com/quic-go/quic-go"
)

// Draining: a client connection a standby took over from leaves the pool but not the wire.
//
// A connection that goes silent for longer than its path's normal silence gets a standby dialed
// beside it (supervisor.liveness), and the standby takes over the slot if it connects first
// (supervisor.connected). The silent connection may only have been paused (a stopped process, a
// short outage) and carry streams in use, a tunnel's transfer say: closing it would end them for
// nothing. So it drains instead. The coordinator forgets it as it forgets any connection that goes,
// but resets its idle streams both ways (the server discards its side at once, and counts them
// discarded, not lost), and sends the shard the streams handed out from it whose write side is
// open. The shard's watch (watchConn) closes the connection once each of those has closed its
// write side (Close or CloseWrite) and the connection has carried nothing but keep-alives for
// drainQuiet, which lets a reply still on its way after a CloseWrite, and the last bytes written,
// arrive; it then reports drained to the supervisor, which stops the shard. A connection that
// really is dead ends at its idle timeout (three keep-alive periods), its streams with it; the pool
// closing closes it at once; and a second switch-over on the same slot closes the one before.
//
// The server takes no part in the decision: when a client's new connection replaces a silent one
// (listener.go), the silent connection keeps its streams and its place in the coordinator, without
// its slot, until its client closes it (drained, or still in use if the client kept it after all)
// or it times out.

const (
	// drainQuiet is how long a draining connection must carry nothing but keep-alives, once no
	// stream handed out from it has its write side open, before it is closed.
	drainQuiet = time.Second
	// keepAliveBytes is the most a connection carries, both ways, in a core.ProbeInterval of
	// keep-alives alone: a PING and its acknowledgement each way, about 40 bytes a packet, with
	// room to spare. More is stream data.
	keepAliveBytes = 1024
)

// drainWatch is a draining connection's watch: the streams handed out from it that have not
// closed their write side, and when it last carried more than keep-alives.
type drainWatch struct {
	streams []*quic.Stream
	carried uint64    // bytes sent and received, as of the last look
	busy    time.Time // the last look that found stream data moved
}

func newDrainWatch(streams []*quic.Stream, stats quic.ConnectionStats, now time.Time) *drainWatch {
	return &drainWatch{streams: streams, carried: stats.BytesSent + stats.BytesReceived, busy: now}
}

// done looks at the connection once (every core.ProbeInterval) and reports whether it is done
// with its streams.
func (d *drainWatch) done(stats quic.ConnectionStats, now time.Time) bool {
	d.streams = slices.DeleteFunc(d.streams, func(s *quic.Stream) bool { return s.Context().Err() != nil })
	carried := stats.BytesSent + stats.BytesReceived
	if carried-d.carried > keepAliveBytes {
		d.busy = now
	}
	d.carried = carried
	return len(d.streams) == 0 && now.Sub(d.busy) >= drainQuiet
}

// drainConnection takes st, a client connection a standby took over from, out of the pool, and
// has its shard keep it open for the streams handed out from it. Its idle streams are reset both
// ways and counted discarded, and the callers waiting for them by ID are failed.
func (c *coordinator) drainConnection(st *shardLoad) {
	c.forgetConnection(st, true)
	st.sweepInUse()
	c.draining[st.pid.ID] = struct{}{}
	c.engine.Send(st.pid, drainStreams{streams: st.inUse})
	st.inUse = nil
}

// drain hands the streams to wait for to the connection's watch; a shard drains once.
func (s *shard) drain(streams []*quic.Stream) {
	select {
	case s.drains <- streams:
	default:
	}
}
