// Package messages holds every message the quicpool actors exchange. They are plain structs,
// exported so that an actor of an embedding hollywood system can talk to a pool directly.
//
// An embedding system needs only the first group: it sends Get, State, Flush, AddError and
// ResetError to the coordinator (Pool.Coordinator returns its PID) and reads the answer from the
// channel it put in the message. The other groups are the pool's internal protocol between
// coordinator, supervisor and shards; they are documented so that the protocol can be read in one
// place, not so that they can be sent from outside.
//
// Every reply channel is a one-slot mailbox: it must have a buffer of exactly one, the pool
// writes to it at most once and never blocks on it. A caller that stops waiting takes the slot
// with Abandon, so that a stream handed out after that moment is returned to the pool instead of
// being lost.
package messages

import (
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quic-go/quic-go"
)

// ---------------------------------------------------------------------------------------------
// Requests from callers (the Pool facade or an embedding actor) to the coordinator.

// Get asks the coordinator for an idle stream. With ID == "" any idle stream will do (IncomingGet);
// otherwise the caller waits for the stream with that ID (OutgoingGet).
type Get struct {
	// ID is the stream wanted, or "" for any. The control stream "00000000" is only ever handed
	// out when asked for by ID.
	ID string
	// Deadline is when the caller stops waiting; the coordinator drops the request then. The zero
	// value means no deadline: the request waits until answered or abandoned.
	Deadline time.Time
	// NoWait asks for a stream that is idle now: if there is none the answer is ErrTimeout.
	NoWait bool
	// Admitted is set by the Pool facade, which holds a place in the coordinator's admission
	// queue for the request until the coordinator takes it. Embedders leave it false.
	Admitted bool
	// Reply receives exactly one Stream, unless the caller abandons it first. Capacity 1.
	Reply chan Stream
}

// Stream is the answer to a Get: an idle stream taken out of the pool, or an error.
type Stream struct {
	ID     string
	Stream *quic.Stream
	Conn   *quic.Conn
	Err    error
}

// Deliver puts s in the request's reply slot. It returns false when the caller has abandoned the
// request: the caller of Deliver still owns s and must put it back or discard it.
func (g Get) Deliver(s Stream) bool {
	select {
	case g.Reply <- s:
		return true
	default:
		return false
	}
}

// Gone reports whether nobody waits for this request any more: its deadline passed or its caller
// abandoned it.
func (g Get) Gone(now time.Time) bool {
	return len(g.Reply) > 0 || (!g.Deadline.IsZero() && !now.Before(g.Deadline))
}

// Abandon is called by a caller that stops waiting for reply. It returns the answer and true if
// the pool had already delivered one (the caller owns that stream), or false if it had not, in
// which case the pool will not deliver one any more.
func Abandon(reply chan Stream) (Stream, bool) {
	select {
	case reply <- Stream{}:
		return Stream{}, false
	default:
		return <-reply, true
	}
}

// State asks the coordinator for a snapshot of the pool. Like every request, it gets no answer
// once the pool has closed: wait for Reply with a timeout of your own.
type State struct {
	Reply chan Snapshot // capacity 1
}

// Snapshot is the coordinator's view of the pool at one moment.
type Snapshot struct {
	Idle       int           // idle streams IncomingGet can hand out (the control stream apart)
	Control    bool          // the control stream 00000000 is idle, waiting to be asked for by ID
	Capacity   int           // target number of idle streams
	Interval   time.Duration // current refill interval (0 for a server pool)
	Shards     int           // shard slots: connections the pool keeps (client) or accepts (server)
	ShardsUp   int           // shards whose connection is up
	Waiters    int           // Get requests waiting for a stream
	Opening    int           // streams being opened (client) or being handshaken (server)
	PeerClosed int           // streams the peer closed before this side took them (by ID only)
	Errors     int           // the user's error counter (AddError / ResetError)
	Running    bool          // the pool has been started and is serving (listening, or a shard up)
	Opened     uint64        // streams that completed the handshake since start
	HandedOut  uint64        // streams handed out to callers since start
	Discarded  uint64        // idle streams closed by the pool since start (flush, death, excess)
	Failed     uint64        // stream opens or handshakes that failed since start
	Refused    uint64        // connections the server refused since start (address, no slot)
	Err        error         // the pool's error (bad config, listen failure, escalation); fails Get calls while no shard is up
	LastErr    error         // the most recent failure of any kind (dial, handshake, connection)
	LastErrAt  time.Time     // when LastErr happened
	ListenAddr string        // the address a server pool listens on, once it listens
	Restarts   uint64        // shard restarts since start
	MaxCap     int           // the largest capacity the pool may grow to
	MinCap     int           // the smallest capacity the pool may shrink to
	IssuedZero bool          // the control stream 00000000 has been issued (server)
}

// Flush asks the coordinator to discard every idle stream. Reply is closed when the coordinator
// has forgotten them all and told every shard to close them.
type Flush struct {
	Reply chan struct{}
}

// WaitReady asks the coordinator to answer once the pool is running with at least N idle
// streams. Reply receives nil then, or the pool's error if it fails first, or ErrClosed. Done, if
// set, is the caller's cancellation: the request is dropped once it is closed.
type WaitReady struct {
	N     int
	Done  <-chan struct{}
	Reply chan error // capacity 1
}

// AddError increments the pool's error counter (Pool.AddError).
type AddError struct{}

// ResetError sets the pool's error counter to zero (Pool.ResetError).
type ResetError struct{}

// ---------------------------------------------------------------------------------------------
// Coordinator to shards.

// Open tells a client shard to open N more streams.
type Open struct{ N int }

// Take tells a shard to hand the idle stream ID to the waiting request.
type Take struct {
	ID  string
	Get Get
}

// Discard tells a shard to close idle streams (both directions) and report them with
// StreamsPurged: the streams with the given IDs, or all of them when IDs is nil.
type Discard struct{ IDs []string }

// ---------------------------------------------------------------------------------------------
// Shards to the coordinator.

// ShardUp reports that a shard's connection is established.
type ShardUp struct {
	Shard *actor.PID
	Slot  int
}

// ShardDown reports that a shard's connection is gone; IDs are the idle streams it discarded.
type ShardDown struct {
	Shard *actor.PID
	IDs   []string
	Err   error
}

// StreamIdle reports a stream that is stored in Shard and ready to be handed out. Returned is set
// when the stream was taken for a caller who had stopped waiting and so came back unused;
// PeerClosed when such a stream had been closed by the peer (see StreamClosedByPeer).
type StreamIdle struct {
	Shard      *actor.PID
	ID         string
	Returned   bool
	PeerClosed bool
}

// StreamsPurged reports idle streams that Shard closed (after Discard).
type StreamsPurged struct {
	Shard *actor.PID
	IDs   []string
}

// StreamClosedByPeer reports an idle stream whose peer closed it (stopped reading) before this
// side took it. It no longer counts as idle, but stays reachable by ID for a grace period: the
// peer may have written data for the caller that will ask for it.
type StreamClosedByPeer struct {
	Shard *actor.PID
	ID    string
}

// OpenFailed reports that N stream opens of Shard failed.
type OpenFailed struct {
	Shard *actor.PID
	N     int
	Err   error
}

// TakeMissed returns a request whose stream the shard no longer had; the coordinator serves it
// again.
type TakeMissed struct {
	ID  string
	Get Get
}

// StreamDiscarded reports a stream that a shard refused or dropped during its handshake.
type StreamDiscarded struct {
	Err error
}

// ReserveID asks the coordinator (server) for a fresh stream ID for a handshaken stream. When the
// pool holds its maximum of idle streams, or the stream's connection its share, the request is
// held until there is room: the client waits for its ID instead of seeing its stream refused.
// Reply receives the ID, or "" if the shard went away. A requester that stops waiting abandons
// the slot with AbandonID.
type ReserveID struct {
	Shard *actor.PID  // the shard whose stream it is; its reservations end with it
	Reply chan string // capacity 1
}

// Deliver puts id in the reply slot; false means the requester abandoned it.
func (r ReserveID) Deliver(id string) bool {
	select {
	case r.Reply <- id:
		return true
	default:
		return false
	}
}

// AbandonID is called by a requester that stops waiting for reply. It returns an ID granted
// meanwhile (the requester must use or release it), or "" if none will come.
func AbandonID(reply chan string) string {
	select {
	case reply <- "":
		return ""
	default:
		return <-reply
	}
}

// ReleaseID returns a reserved ID whose stream never became idle.
type ReleaseID struct{ ID string }

// ---------------------------------------------------------------------------------------------
// Supervision.

// Start tells the supervisor to bring the pool up: dial (client) or listen (server).
type Start struct{}

// Shutdown tells the supervisor to stop every shard and the listener. Reply is closed when all
// shard actors have stopped.
type Shutdown struct {
	Reply chan struct{}
}

// Retire tells a shard to give up its connection (the supervisor replaces it): it fails with Err.
type Retire struct {
	Err error
}

// Retired is the coordinator's answer to ShardDown: it has forgotten the shard and will send it
// nothing more. Only then does the shard report ShardFailed to the supervisor, which stops it; so
// a Take sent before the coordinator forgot the shard is still answered (TakeMissed).
type Retired struct{}

// ShardFailed reports to the supervisor that a shard's connection failed or could not be made,
// once the coordinator has retired the shard.
type ShardFailed struct {
	Shard *actor.PID
	Slot  int
	Err   error
}

// ShardHealthy reports to the supervisor that a shard's connection is up.
type ShardHealthy struct {
	Shard *actor.PID
	Slot  int
}

// ShardActive reports to the supervisor that a server shard accepted a stream (sent at most once
// a second per shard). When no slot is free, a reconnecting client replaces its quietest
// connection.
type ShardActive struct {
	Shard *actor.PID
	Slot  int
}

// PoolError sets (or, with Err == nil, clears) the pool's error on the coordinator. While it is
// set and no connection is up, Get requests that cannot be served at once fail with it instead
// of waiting.
type PoolError struct {
	Err error
}

// Refused reports a connection the server refused before its handshake (an address that is not
// allowed); the supervisor logs it and the coordinator counts it.
type Refused struct {
	Addr string
	Err  error
}

// Listening tells the coordinator that a server pool listens on Addr.
type Listening struct{ Addr string }

// Restarted tells the coordinator that the supervisor started a new shard incarnation.
type Restarted struct{}

// Tick drives the coordinator's refill and tuning cycle.
type Tick struct{}

// ---------------------------------------------------------------------------------------------
// Events.

// EventKind names what an Event reports.
type EventKind string

// The events a pool broadcasts.
const (
	EventShardUp          EventKind = "shard up"          // a connection came up
	EventShardFailed      EventKind = "shard failed"      // a connection died or could not be made
	EventRestartScheduled EventKind = "restart scheduled" // a shard will be replaced after Delay
	EventEscalated        EventKind = "escalated"         // restarts exceeded the policy's intensity
	EventRecovered        EventKind = "recovered"         // a connection came up after an escalation
	EventListening        EventKind = "listening"         // a server pool listens on Addr
	EventListenFailed     EventKind = "listen failed"     // a server pool cannot listen
	EventRefused          EventKind = "refused"           // a server pool refused a connection
	EventReplaced         EventKind = "replaced"          // a reconnecting client replaced its quietest connection
)

// Event is what a pool broadcasts on its engine's event stream (actor.Engine.Subscribe) as its
// supervision acts, so that an embedding system can watch and react. The same events go to the
// pool's logger.
type Event struct {
	Kind      EventKind
	Pool      *actor.PID    // the pool's supervisor
	Slot      int           // the shard slot, -1 when not about one shard
	Attempt   int           // consecutive failures of the slot (EventRestartScheduled)
	Delay     time.Duration // the backoff before the restart (EventRestartScheduled)
	Permanent bool          // the failure cannot be fixed by retrying with this configuration
	Addr      string        // listen address (EventListening) or remote address (EventRefused)
	Err       error
	Time      time.Time
}
