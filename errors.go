package quicpool

import (
	"errors"
	"strconv"

	"github.com/quicpool/quicpool/internal/core"
)

// The errors a pool reports. Every error of Get, Accept, OutgoingGet, IncomingGet and WaitReady
// is an *OpError wrapping one of them (or, for a call whose context was cancelled, the context's
// error alone), and often the cause of a failure too (a dial, listen or TLS error): test with
// errors.Is for these and errors.As for the cause. Err (and Stats().Err) returns the pool's
// condition as it is: one of them, with its cause if it has one, not wrapped in an *OpError. The
// same values reach an embedder in messages.Stream.Err and in the WaitReady reply.
var (
	// ErrClosed: the pool has been closed, or was closed while the call waited.
	ErrClosed = core.ErrClosed
	// ErrTimeout: no stream arrived (or the pool did not become ready) within the caller's
	// timeout or context deadline. It satisfies net.Error with Timeout() == true; a context
	// deadline also matches context.DeadlineExceeded. On a client with no connection that
	// answers (its dials failed, or its connections went silent) it also wraps ErrUnavailable and
	// the reason; a listening server's timeout (no client connected, or no stream idle) is a
	// bare ErrTimeout.
	ErrTimeout = core.ErrTimeout
	// ErrUnavailable: no connection is up; it wraps the last connection failure. Calls wait for a
	// connection within their timeout while the pool retries, and fail at once with ErrUnavailable
	// when the failure is permanent (a certificate that does not verify, an ALPN the server does
	// not speak, an unusable address) or restarts come faster than the RestartPolicy allows.
	// Err() returns it until a connection is up. A server that cannot listen fails calls with its
	// listen error, which matches ErrUnavailable too.
	ErrUnavailable = core.ErrUnavailable
	// ErrStreamGone: the stream with that ID was idle in the pool but has been discarded since
	// (its connection died, the pool was flushed, or the peer closed it and its grace ended).
	ErrStreamGone = core.ErrStreamGone
	// ErrInvalidID: an ID that no pool can issue (IDs are exactly 8 lowercase hex characters).
	ErrInvalidID = core.ErrInvalidID
	// ErrInvalidArgument: a request the pool can never satisfy, such as WaitReady for more idle
	// streams than its maximum capacity.
	ErrInvalidArgument = core.ErrInvalidArgument
	// ErrInvalidConfig: the pool was built with arguments it cannot run with (an unknown TLS code,
	// a capacity beyond MaxShards x StreamsPerShard, an option that does not apply to the pool's
	// side, ...). NewClient and NewServer return it; the pools of NewClientPool and NewServerPool
	// fail every call with it.
	ErrInvalidConfig = core.ErrInvalidConfig
	// ErrUnauthorized: a server pool refused a connection from an address it does not allow (or a
	// client certificate it does not accept). A client whose connection a server refused when its
	// address moved out of the allow-list wraps it in Err() and in the calls that fail meanwhile.
	ErrUnauthorized = core.ErrUnauthorized
	// ErrPoolFull: a server pool refused a stream or a connection because it is at its maximum. A
	// client the server refuses for want of a connection slot wraps it in Err() and in the calls
	// that fail meanwhile.
	ErrPoolFull = core.ErrPoolFull
	// ErrBadHandshake: a peer did not follow the stream handshake (a wrong first byte, a short or
	// late ID); the stream was discarded.
	ErrBadHandshake = core.ErrBadHandshake
	// ErrViolation: a client pool closed its connection to a server that broke the protocol: it
	// issued an ID that is already idle or a second control stream, closed most fresh streams
	// before any was taken, or completed no stream handshake for three handshake timeouts. The
	// error names what happened; the pool reconnects with backoff.
	ErrViolation = core.ErrViolation
	// ErrPanic: a panic was recovered in one of the pool's actors or goroutines, and logged with
	// its stack. A shard that panicked is replaced, as a failed one is; a goroutine that panicked
	// fails only its own work (that stream open, that stream's handshake, that listen attempt);
	// the coordinator and the supervisor go on with their next message.
	ErrPanic = core.ErrPanic
)

// SilentError is why a client pool cannot serve while its connections are up but none answers
// (a network outage, a server that crashed without closing them): Since is when the server was
// last heard. It comes wrapped in ErrUnavailable.
type SilentError = core.SilentError

// OpError is the error Get, Accept, OutgoingGet, IncomingGet and WaitReady return (Err does not
// wrap the pool's condition in one). It names the operation and the stream ID asked for, and
// wraps the cause. Like *net.OpError it satisfies net.Error: Timeout reports
// whether the cause is a timeout.
type OpError struct {
	Op  string // "Get", "Accept", "OutgoingGet", "IncomingGet", "WaitReady"
	ID  string // the stream ID asked for, if any
	Err error  // the cause: one of the Err values above, a context error, or a network error
}

// Error reports the operation, the stream ID if any, and the cause.
func (e *OpError) Error() string {
	if e.ID != "" {
		return e.Op + "(" + quoteID(e.ID) + "): " + e.Err.Error()
	}
	return e.Op + ": " + e.Err.Error()
}

// quoteID is id as the error shows it: as it is if it is letters and digits (every ID the pool
// issues), quoted otherwise, since an ID may come from the peer.
func quoteID(id string) string {
	for _, r := range id {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') {
			return strconv.Quote(id)
		}
	}
	return id
}

// Unwrap returns the cause.
func (e *OpError) Unwrap() error { return e.Err }

// Timeout reports whether the operation failed because it ran out of time (its cause is
// ErrTimeout). A call that failed at once because the pool is unavailable did not time out, even
// when the connection failure behind it was a timeout.
func (e *OpError) Timeout() bool { return errors.Is(e.Err, ErrTimeout) }

// Temporary reports the same as Timeout: a timed-out call may succeed when retried.
func (e *OpError) Temporary() bool { return e.Timeout() }
