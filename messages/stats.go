package messages

import "time"

// Stats is one consistent snapshot of a pool, taken in one step by the actor that owns its
// streams. Pool.Stats returns it (as quicpool.Stats), and so does a State request. Counters count
// from the pool's start and survive Close: Stats after Close is the pool's last state, with
// Closed set.
type Stats struct {
	// Idle is the number of idle streams Accept/IncomingGet can hand out now (the control stream
	// apart).
	Idle int
	// Control reports that the control stream "00000000" is idle, waiting to be asked for by ID.
	Control bool
	// PeerClosed is the number of streams the peer closed before this side took them. They no
	// longer count as idle, but stay reachable by ID for 10s (the peer may have written data).
	PeerClosed int
	// Capacity is the number of idle streams the pool aims to keep: tuned between MinCap and
	// MaxCap on a client, MaxCap on a server.
	Capacity int
	// MinCap and MaxCap are the capacity bounds the pool was built with.
	MinCap, MaxCap int
	// Interval is a client pool's current refill interval, tuned between its bounds (0 for a
	// server pool).
	Interval time.Duration
	// Shards is the number of connections the pool keeps (client) or accepts (server).
	Shards int
	// ShardsUp is the number of those connections that are up now.
	ShardsUp int
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

	// Opened counts streams that completed their handshake.
	Opened uint64
	// HandedOut counts streams handed out to callers.
	HandedOut uint64
	// Discarded counts idle streams the pool closed: flushed, excess, duplicate, or closed by the
	// peer and not taken within their grace period.
	Discarded uint64
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
	// (nil, unbuffered, full or shared): the answer was dropped or the request refused.
	Dropped uint64

	// Conns is the health of each connection that is up, by slot.
	Conns []ConnStats

	// Err is why the pool cannot serve now, or nil while it can. It is the error Pool.Err
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
	// Slot is the connection's shard slot (0 <= Slot < Stats.Shards).
	Slot int
	// Remote is the peer's address.
	Remote string
	// Idle is the number of this connection's streams Accept may hand out now.
	Idle int
	// Suspect reports that the peer has been silent for longer than the path's normal silence
	// (four probe intervals of 250ms and four round trips): its streams are not handed out, and a
	// client dials a standby connection.
	Suspect bool
	// Up is how long the connection has been up.
	Up time.Duration
	// LastHeard is how long ago the last packet from the peer arrived (updated every second
	// while the peer answers).
	LastHeard time.Duration
	// SmoothedRTT is the connection's smoothed round-trip time (RFC 9002).
	SmoothedRTT time.Duration
}
