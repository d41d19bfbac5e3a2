package actors

import (
	"net"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool/messages"
)

// The pool's own protocol between its actors and the goroutines that work for them. The types
// are unexported: no code outside this package can send them, so the coordinator's inbox takes
// from outside only the requests of package messages.
//
// A stream's life, client side: the coordinator hands the replacement of a taken stream to one of
// the shard's idle opener workers (opener.offer); it asks for more streams, or for one when no
// worker is idle, with openStreams to the shard, which runs them on its workers. A worker opens
// a stream, reads its ID and hands the stream straight to the coordinator (streamReady), which
// owns it from then on, hands it to a caller (one step, no hop through the shard), or discards
// it. Server side: the shard's goroutine accepts a stream and reads its handshake byte (a worker
// waits for a byte that is late) and hands the stream to the coordinator (handshaken), which
// issues and writes its ID (the streams the loop accepted back to back come in one message).
//
// A connection's life: the shard reports shardUp to the coordinator when its connection is up,
// and shardFailed to the supervisor when it dies. The supervisor stops the shard, decides on the
// restart, and tells the coordinator shardDown, which forgets the shard's idle streams.
//
// A client connection a standby took over from drains (drain.go): the supervisor tells the
// coordinator shardDown with drain set; the coordinator discards the connection's idle streams
// and sends the shard the streams it handed out (drainStreams); the shard's watch closes the
// connection once they are done and reports drained to the supervisor, which stops the shard.
type (
	// Shards and their goroutines to the coordinator.

	// shardUp: the shard's connection is up and may carry streams.
	shardUp struct {
		shard  *actor.PID
		slot   int
		conn   *quic.Conn
		opener opener // client: starts one stream open on an idle worker of the shard
	}
	// streamReady hands a handshaken stream with its ID to the coordinator.
	streamReady struct {
		shard  *actor.PID
		id     string
		stream *quic.Stream
	}
	// openFailed: n stream opens of the shard failed.
	openFailed struct {
		shard *actor.PID
		err   error
		n     int
	}
	// handshakeFailed: a server stream failed its handshake and was discarded.
	handshakeFailed struct {
		shard *actor.PID
		err   error
	}
	// handshaken hands the coordinator server streams of shard whose handshake byte arrived, in
	// the order they were accepted: the coordinator issues their IDs (or holds or refuses them)
	// and owns them from then on.
	handshaken struct {
		shard   *actor.PID
		streams []*quic.Stream
	}
	// checkPeers: time to look for idle streams the peer stopped reading (idle.go).
	checkPeers struct{}
	// tick drives the coordinator's refill and tuning cycle.
	tick struct{}
	// replaceDue: time to open the replacements a client held back for a batch (coalesce).
	replaceDue struct{ batch int }
	// dialFailed: one dial attempt of a client shard failed; the shard goes on trying.
	dialFailed struct{ err error }

	// A shard's liveness watch to the coordinator (on every change, and once a second) and to the
	// supervisor (on every change).

	// liveness: the shard's peer was last heard at heard; suspect means it has been silent for
	// longer than its path's normal silence.
	liveness struct {
		shard   *actor.PID
		slot    int
		suspect bool
		heard   time.Time
	}

	// Coordinator to a client shard.

	// openStreams asks for n more streams.
	openStreams struct{ n int }
	// violation tells a client shard that its server broke the protocol: it closes the connection
	// with wire.ConnCodeViolation and fails with err.
	violation struct{ err error }
	// drainStreams tells a client shard that its connection left the pool: it stays open until
	// streams, those it handed out whose write side was open, are done (drain.go).
	drainStreams struct{ streams []*quic.Stream }

	// Shards to the supervisor.

	// shardFailed: the shard's connection died or could not be made. upFor is how long it was up
	// (zero if it never came up).
	shardFailed struct {
		shard *actor.PID
		slot  int
		err   error
		upFor time.Duration
	}
	// connected (client): the shard's connection is up.
	connected struct {
		shard *actor.PID
		slot  int
	}
	// drained (client): the shard's connection, out of the pool, is done with its streams and
	// closed (drain.go).
	drained struct {
		shard *actor.PID
		slot  int
	}

	// Coordinator to the supervisor.

	// dialOthers (client): the first connection has opened as much as one connection holds, or
	// cannot (an open failed), or it has opened the pool's capacity and a tick has come since
	// (letOthersDial): the other slots may dial now (supervisor.startOthers). The supervisor's
	// own fallback timer sends it too.
	dialOthers struct{}

	// Supervisor to the coordinator.

	// shardDown: forget the shard and its idle streams. err is why it went: its failure, or why
	// it was retired (errSwitchedOver, errReplaced); nil when it stopped with the pool (the shard
	// sends that one itself). failFast says calls should fail at once while no connection is up.
	// drain (client) says the connection stays open for the streams handed out from it: its idle
	// streams are discarded, and the shard is told which streams to wait for (drainStreams).
	shardDown struct {
		shard    *actor.PID
		err      error
		failFast bool
		drain    bool
	}
	// formerConn (server): the shard's connection became its slot's former one (former), or took
	// its slot back.
	formerConn struct {
		shard  *actor.PID
		former bool
	}
	// listening: the server pool listens on addr.
	listening struct{ addr string }
	// listenFailed: the server pool cannot listen.
	listenFailed struct{ err error }
	// connRefused: the server refused a connection, for reason.
	connRefused struct{ reason refusalReason }

	// The supervisor's own goroutines and timers.

	restartSlot struct{ slot int }
	// dialNext (client): the first dial of slot has not ended within dialGap; the next slot's
	// first dial starts anyway (supervisor.dialNextOther).
	dialNext      struct{ slot int }
	shardsStopped struct{ reply chan struct{} }
	listenResult  struct {
		addr net.Addr
		err  error
	}
	connAccepted struct {
		conn   *quic.Conn
		closed chan struct{} // closed once the connection is closed; the listener waits for it
	}
	// creditAsk asks for a new connection's stream credit (admission.go); creditReturned gives
	// a closed connection's back.
	creditAsk      struct{ reply chan grant }
	creditReturned struct{ id uint64 }
	refusal        struct {
		addr       string
		err        error
		reason     refusalReason
		perInitial bool // judged for one Initial packet: the dial's other Initials are judged again (recentRefusals)
	}

	// A shard's own goroutines.

	dialed    struct{ conn *quic.Conn }
	connLost  struct{ err error }
	pathMoved struct{ addr net.Addr } // the peer's address changed (server)
)

// refusalReason is why a server refused a connection (messages.Refusals).
type refusalReason uint8

const (
	refusedNotAllowed  refusalReason = iota // the address is not on the allow-list
	refusedMoved                            // the connection moved to an address not on it
	refusedCertificate                      // no acceptable client certificate
	refusedFull                             // no shard slot for it, or no answer on its credit
)

// deliver puts v in a reply channel without blocking; false means nobody takes it (the caller
// abandoned the request, or its channel cannot take it: nil, unbuffered with no reader, full, or
// closed): what v carries is still the pool's.
func deliver[T any](reply chan T, v T) (ok bool) {
	defer func() {
		if recover() != nil { // a closed channel: an embedder's mistake must not cost a stream
			ok = false
		}
	}()
	select {
	case reply <- v:
		return true
	default:
		return false
	}
}

// isClosed reports whether reply is closed, so that no answer could ever reach it. It looks only
// at an empty channel (one with a value is a caller's that gave up: Abandon); a value sent
// meanwhile, which the look takes, is put back. Only Abandon's mark can be sent meanwhile
// (messages.Get.Reply has no other sender), and nothing else fills the slot before it is back.
func isClosed[T any](reply chan T) bool {
	if len(reply) > 0 {
		return false
	}
	select {
	case v, ok := <-reply: // a nil channel is never ready: not closed
		if ok {
			deliver(reply, v)
		}
		return !ok
	default:
		return false
	}
}

// sendStream is deliver for the hot path's one type: generic code shares one shape for
// every struct type, with a frame many times this one's, on the stack of every hand-out.
func sendStream(reply chan messages.Stream, v messages.Stream) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	select {
	case reply <- v:
		return true
	default:
		return false
	}
}
