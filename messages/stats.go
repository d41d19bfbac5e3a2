package messages

import "time"

// Stats is one consistent snapshot of a pool, taken in one step by the actor that owns its
// streams. Pool.Stats returns it (as quicpool.Stats), and so does a State request. Counters count
// from the pool's start and survive Close: Stats after Close is the pool's last state, with
// Closed set.
type Stats struct {
	// Name is the pool's name (quicpool.WithName), "" if none was given: a label for metrics and
	// logs.
	Name string
	// Side is "client" or "server".
	Side string
	// Idle is the number of idle streams Accept/IncomingGet can hand out now (the control stream
	// apart).
	Idle int
	// Control reports that the control stream "00000000" is idle, waiting to be asked for by ID.
	Control bool
	// PeerClosed is the number of streams the peer closed before this side took them. They no
	// longer count as idle, but stay reachable by ID for 10s (the peer may have written data).
	PeerClosed int
	// Withheld is the number of idle streams of connections that are silent now (or, on a
	// server, whose client's newer connection took their slot): not handed out until their
	// connection answers again (then they count in Idle), or purged with it (then in Lost). Not
	// counted in Idle.
	Withheld int
	// Capacity is the number of idle streams the pool aims to keep: tuned between MinCap and
	// MaxCap on a client, MaxCap on a server.
	Capacity int
	// MinCap and MaxCap are the capacity bounds the pool was built with.
	MinCap, MaxCap int
	// Interval is a client pool's current refill interval, tuned between its bounds (0 for a
	// server pool).
	Interval time.Duration
	// Shards is the number of connections the pool dials (client), or the most it accepts
	// (server: twice what one client pool dials, at most half of them from one IP address).
	Shards int
	// ShardsUp is the number of those connections that are up now. On a server it may exceed
	// Shards for a while: a connection whose client reconnected gives up its slot but stays until
	// its client closes it or it times out.
	ShardsUp int
	// Draining is the number of a client's connections that a standby took over from after a
	// silence, out of the pool but still open for the streams handed out from them: each closes
	// once those are done, or ends at its idle timeout if its server is really gone.
	Draining int
	// Waiters is the number of Get/Accept calls waiting for a stream now (callers that gave up
	// are not counted).
	Waiters int
	// Opening is the number of streams being opened (client) or handshaken and waiting for an ID
	// (server).
	Opening int
	// Errors is the application's error counter (AddError, ResetError, ErrorCount).
	Errors int
	// Running reports that the pool serves: a client has a connection up, a server listens.
	Running bool
	// Closed reports that the pool has been closed (or its parent actor stopped).
	Closed bool
	// ListenAddr is the address a server pool listens on, once it does ("" for a client).
	ListenAddr string

	// Opened counts streams that completed their handshake (a client's: that got their ID),
	// those then refused (counted in Discarded too) included.
	Opened uint64
	// HandedOut counts streams handed out to callers.
	HandedOut uint64
	// Discarded counts streams the pool closed and reset without handing them out: flushed, taken
	// back, duplicate or refused for a protocol violation, discarded by the peer's pool, or closed
	// by the peer and not taken within their grace period. (Streams refused at their handshake
	// count in Failed.)
	Discarded uint64
	// Lost counts idle streams (the peer-closed ones and the control stream included) that ended
	// with their connection, without being handed out: it went down, was closed for a protocol
	// violation, or the pool closed. With the others, every stream Opened is accounted for in
	// every snapshot: Opened = HandedOut + Discarded + Lost + Idle + Withheld + PeerClosed, plus 1
	// while Control.
	Lost uint64
	// Failed counts stream opens (client) and handshakes (server) that failed.
	Failed uint64
	// Refused counts connections a server refused: an address not allowed, or no free slot.
	Refused uint64
	// Restarts counts shard restarts: connections redialed after a failure (client).
	Restarts uint64
	// Violations counts connections a client closed because its server broke the protocol (see
	// quicpool.ErrViolation).
	Violations uint64
	// Dropped counts requests sent to the pool whose reply channel could not take the answer
	// (nil, unbuffered, closed, full or shared): the answer was dropped or the request refused.
	// A Get's reply slot that is already full when its answer comes is its caller's, who gave up
	// (Abandon): that is not counted.
	Dropped uint64
	// Reconnects counts connections that came up in a slot that had held one before: a client's
	// redials and standby connections; on a server, every connection accepted into a slot an
	// earlier connection held, whichever client either came from (a new connection takes the
	// lowest free slot).
	Reconnects uint64
	// Reclaimed counts idle streams a server took back from a connection above its fair share
	// (reset both ways; also counted in Discarded).
	Reclaimed uint64
	// Refusals counts the connections a server refused, by reason (each refusal has one reason:
	// they add up to Refused).
	Refusals Refusals
	// Wait is how long the Get/Accept calls that were served waited for their stream, from the
	// pool's receipt of the call to the hand-out (a stream that was idle counts as a zero wait).
	Wait WaitHistogram

	// Conns is the health of each connection that is up, by slot.
	Conns []ConnStats

	// Err is why the pool cannot serve now, or nil if it knows of no reason (while it serves,
	// and before its first connection attempt ends: see Running). It is the error Pool.Err
	// returns: the configuration error; a server's listen error; on a client with no connection
	// up, ErrUnavailable wrapping the last connection failure (the pool keeps retrying); ErrClosed
	// once the pool is closed. It clears when a connection comes up.
	Err error
	// FailFast reports that calls fail at once with Err instead of waiting: a permanent failure
	// (TLS verification, ALPN, an unusable address), restarts beyond the restart policy, a listen
	// or configuration error, or Close.
	FailFast bool
}

// ConnStats is the health of one of a pool's connections.
type ConnStats struct {
	// Slot is the connection's shard slot (0 <= Slot < Stats.Shards). A slot has one connection,
	// except on a client for the moment a standby connection takes over from a silent one (both
	// are listed then, the silent one marked Suspect), and on a server while a Former connection
	// stays. Since tells the connections of a slot apart.
	Slot int
	// Remote is the peer's address.
	Remote string
	// Idle is the number of this connection's streams Accept may hand out now.
	Idle int
	// Suspect reports that the peer has been silent for longer than the path's normal silence
	// (four probe intervals of 250ms and four round trips): its streams are not handed out, and a
	// client dials a standby connection.
	Suspect bool
	// Former reports (server) that the client's newer connection took this connection's slot
	// while it was silent. It stays open, for the streams its client still uses on it, until the
	// client closes it or it times out; it has no share of the pool and its idle streams are not
	// handed out (Stats.Withheld). If the newer connection ends first while this one answers, this
	// one takes the slot back.
	Former bool
	// Up is how long the connection has been up.
	Up time.Duration
	// LastHeard is how long ago the last packet from the peer arrived (updated every second
	// while the peer answers).
	LastHeard time.Duration
	// SmoothedRTT is the connection's smoothed round-trip time (RFC 9002), LatestRTT its last
	// sample.
	SmoothedRTT, LatestRTT time.Duration
	// Since is when the connection came up.
	Since time.Time
	// InUse is the number of this connection's streams handed out whose write side is still open
	// (the caller has not closed it, and the peer has not stopped reading).
	InUse int
	// Opened counts streams of this connection that completed their handshake; Failed, stream
	// opens (client) or handshakes (server) on it that failed.
	Opened, Failed uint64
	// The connection's packet and byte counters (quic-go's ConnectionStats): sent, received, and
	// packets declared lost.
	PacketsSent, PacketsReceived, PacketsLost uint64
	BytesSent, BytesReceived                  uint64
}

// Refusals counts a server's refused connections by reason.
type Refusals struct {
	// NotAllowed: the client's address is not on the allow-list, at the handshake.
	NotAllowed uint64
	// Moved: a connection's address changed to one the allow-list refuses.
	Moved uint64
	// Certificate: the client presented no acceptable certificate (mutual TLS).
	Certificate uint64
	// Full: every slot was taken by a connection that could not be displaced, or the client's
	// address held every connection one address may, or the pool was too busy to give the
	// connection its stream credit within a second.
	Full uint64
}

// WaitBounds returns the upper bounds of WaitHistogram's buckets, in increasing order; the last
// bucket has none.
func WaitBounds() []time.Duration { b := waitBounds; return b[:] }

var waitBounds = [...]time.Duration{
	0, 50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// WaitHistogram is a histogram of waits. With b = WaitBounds(), Counts[i] is the number of waits
// w with b[i-1] < w <= b[i] (not cumulative); the last element counts the waits above every
// bound. Count is the number of waits, Sum their total.
type WaitHistogram struct {
	Counts [len(waitBounds) + 1]uint64
	Count  uint64
	Sum    time.Duration
}
