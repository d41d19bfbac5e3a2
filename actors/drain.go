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
// write side (Close or CloseWrite) and the connection, its peer answering, has then carried
// nothing but keep-alives for its idle timeout (three keep-alive periods): a stream only
// half-closed (CloseWrite) may still be waiting for its peer's reply, which the pool cannot see,
// and QUIC calls a connection that long without data idle. It then reports drained to the
// supervisor, which stops the shard. A connection that really is dead ends at its idle timeout,
// its streams with it (time in which its peer is silent never counts as quiet); the pool closing
// closes it at once; and so do a second switch-over on the same slot and the failure of the
// connection that took over (the server may have refused it, the old one answering there).
//
// The server takes no part in the decision: when a client's new connection takes the slot of a
// silent one (listener.go), the silent connection becomes the slot's former one. It keeps its
// streams in use, and its place in the coordinator with its idle streams withheld (a client that
// switched over has reset them) and no share of the pool, until its client closes it or it times
// out; or, if the connection that took its slot ends while it answers (its client kept it after
// all), it takes the slot back.

const (
	// keepAliveBytes is the most a connection carries, both ways, in a core.ProbeInterval of
	// keep-alives alone: a PING and its acknowledgement each way, about 40 bytes a packet, with
	// room to spare. More is stream data.
	keepAliveBytes = 1024
)

// drainWatch is a draining connection's watch: the streams handed out from it that have not
// closed their write side, and since when it has carried nothing but keep-alives with its peer
// answering.
type drainWatch struct {
	streams []*quic.Stream
	quiet   time.Duration // how long it must be quiet: its idle timeout
	carried uint64        // bytes sent and received, as of the last look
	busy    time.Time     // the last look that found stream data moved, or the peer silent
}

func newDrainWatch(streams []*quic.Stream, quiet time.Duration, stats quic.ConnectionStats, now time.Time) *drainWatch {
	return &drainWatch{streams: streams, quiet: quiet, carried: stats.BytesSent + stats.BytesReceived, busy: now}
}

// done looks at the connection once (every core.ProbeInterval) and reports whether it is done
// with its streams; silent says its peer has not been heard for longer than its path's normal
// silence.
func (d *drainWatch) done(stats quic.ConnectionStats, silent bool, now time.Time) bool {
	d.streams = slices.DeleteFunc(d.streams, func(s *quic.Stream) bool { return s.Context().Err() != nil })
	carried := stats.BytesSent + stats.BytesReceived
	if carried-d.carried > keepAliveBytes || silent {
		d.busy = now
	}
	d.carried = carried
	return len(d.streams) == 0 && now.Sub(d.busy) >= d.quiet
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

// idleTimeout is how long a connection of the pool may carry nothing before QUIC calls it idle
// (quic-go's default when the configuration leaves it zero).
func (rt *runtime) idleTimeout() time.Duration {
	if rt.QUIC != nil && rt.QUIC.MaxIdleTimeout > 0 {
		return rt.QUIC.MaxIdleTimeout
	}
	return 30 * time.Second
}
