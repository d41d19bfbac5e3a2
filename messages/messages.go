// Package messages holds the requests an actor of an embedding hollywood system may send a pool,
// and what the pool sends back. Send them to Pool.Coordinator; nothing else is accepted there
// (the pool's own protocol between its actors uses types no other package can name).
//
// Every request that expects an answer carries its reply channel. Give it a buffer of one: the
// pool never blocks on a reply channel, so an answer that does not fit (a nil, unbuffered, full
// or shared channel) is dropped and counted in Stats.Dropped, and a Get, State or WaitReady
// whose channel can never take an answer is refused the same way. Wait for a reply with a bound
// of your own, in a goroutine rather than in Receive: a pool that has closed answers nothing.
package messages

import (
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quic-go/quic-go"
)

// Get asks for an idle stream. With ID == "" any idle stream will do (Pool.Accept); otherwise
// the stream with that ID (Pool.Get), waiting for it to arrive.
type Get struct {
	// ID is the stream wanted, or "" for any. The control stream "00000000" is only handed out
	// when asked for by ID.
	ID string
	// Deadline is when the caller stops waiting: a request still waiting then is dropped. It
	// does not stop a hand-out of a stream idle when the request arrives (the caller that gave
	// up calls Abandon, which returns it). The zero value means no deadline: the request waits
	// until answered, abandoned, or the pool closes.
	Deadline time.Time
	// NoWait asks for a stream that is idle now: if there is none the answer is ErrTimeout.
	NoWait bool
	// Reply receives exactly one Stream, unless the caller abandons it first (see Abandon) or
	// the request's Deadline passes while it waits: it may then go unanswered, so stop waiting at
	// the Deadline and call Abandon. It must have a buffer of exactly one and serve one request
	// at a time: it may serve another once it has received this one's answer, and never after
	// Abandon found no answer in it. Nothing but the pool and the caller's Abandon may send on
	// it. A closed Reply is refused at once (counted in Stats.Dropped).
	Reply chan Stream
}

// Stream is the answer to a Get: an idle stream taken out of the pool (the caller owns it now;
// wrap it with quicpool.NewStreamConn), or an error.
type Stream struct {
	ID     string
	Stream *quic.Stream
	Conn   *quic.Conn
	Err    error
}

// Abandon is called by a caller that stops waiting for a Get's reply. It returns the answer and
// true if the pool had already delivered one (the caller owns that stream and must close it), or
// false if it had not, in which case the pool will deliver none: a stream it was about to hand
// out goes to the next caller instead of being lost. Call it once, on a Get's own reply channel
// (of capacity one, open): on a nil or unbuffered channel it blocks for good, on a closed one it
// panics.
func Abandon(reply chan Stream) (Stream, bool) {
	select {
	case reply <- Stream{}:
		return Stream{}, false
	default:
		return <-reply, true
	}
}

// State asks for a snapshot of the pool, taken in one step.
type State struct {
	Reply chan Stats
}

// WaitReady asks to be answered once the pool is running (a client has a connection up, a server
// listens) with at least N idle streams. Reply receives nil then; or at once an error wrapping
// ErrInvalidArgument if the pool can never hold N idle streams; or the pool's error if it cannot
// serve (ErrUnavailable after a permanent failure, the listen error, the configuration error);
// or ErrClosed. Done, if set, is the caller's cancellation: the request is dropped once it is
// closed.
type WaitReady struct {
	N     int
	Done  <-chan struct{}
	Reply chan error
}

// Flush asks the pool to discard every idle stream: each is reset both ways and the pool refills.
// Reply, if set, receives one value once every idle stream is gone.
type Flush struct {
	Reply chan struct{}
}

// AddError increments the pool's error counter (Pool.AddError).
type AddError struct{}

// ResetError sets the pool's error counter to zero (Pool.ResetError).
type ResetError struct{}

// EventKind names what an Event reports.
type EventKind string

// The events a pool broadcasts.
const (
	EventShardUp          EventKind = "shard up"          // a connection came up
	EventShardFailed      EventKind = "shard failed"      // a connection died or could not be made
	EventRestartScheduled EventKind = "restart scheduled" // a shard will be replaced after Delay
	EventUnavailable      EventKind = "unavailable"       // calls fail at once: a client's permanent failure or restarts beyond the policy, or a server's failed listen
	EventRecovered        EventKind = "recovered"         // calls were failing at once and no longer do: a client's connection came up, or a server listens
	EventListening        EventKind = "listening"         // a server pool listens on Addr
	EventListenFailed     EventKind = "listen failed"     // a server pool cannot listen
	EventRefused          EventKind = "refused"           // a server pool refused a connection
	EventReplaced         EventKind = "replaced"          // a reconnecting client's new connection took its silent one's slot; the silent one stays until its client closes it or it times out
	EventSuspect          EventKind = "suspect"           // a connection's peer went silent: its streams are not handed out
	EventAlive            EventKind = "alive"             // a silent connection's peer answers again
	EventStandby          EventKind = "standby"           // a client dials a standby for a silent connection
	EventSwitchOver       EventKind = "switch-over"       // a standby connection took over from a silent one, which drains: open, out of the pool, until the streams handed out from it are done
	EventStatelessReset   EventKind = "stateless reset"   // the server reset a connection: it restarted and lost it
)

// Event is what a pool broadcasts on its engine's event stream (actor.Engine.Subscribe) as it
// acts, so that an embedding system can watch and react. The same events go to the pool's logger.
type Event struct {
	Kind      EventKind
	Pool      *actor.PID    // the pool's coordinator, as Pool.Coordinator returns it
	Slot      int           // the shard slot, -1 when not about one shard
	Attempt   int           // consecutive failures of the slot (EventRestartScheduled)
	Delay     time.Duration // the backoff before the restart (EventRestartScheduled)
	Permanent bool          // the failure cannot be fixed by retrying with this configuration
	Addr      string        // listen address (EventListening) or remote address (EventRefused, EventReplaced)
	Err       error
	Time      time.Time
}
