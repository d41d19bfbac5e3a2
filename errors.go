package quicpool

import (
	"errors"

	"github.com/quicpool/quicpool/messages"
)

// The errors a pool reports, in one place. Every error a Pool method returns is an *OpError that
// wraps one of these (or the cause of a failure: a dial, listen or TLS error); test with
// errors.Is. They are the same values as in package messages, for embedders that talk to the
// pool's actors directly.
var (
	// ErrClosed: the pool has been closed, or was closed while the call waited.
	ErrClosed = messages.ErrClosed
	// ErrTimeout: no stream arrived within the caller's timeout. Satisfies net.Error with
	// Timeout() == true.
	ErrTimeout = messages.ErrTimeout
	// ErrStreamGone: OutgoingGet asked for an ID whose stream was idle in the pool but has been
	// discarded since (its connection died, or the pool was flushed).
	ErrStreamGone = messages.ErrStreamGone
	// ErrUnavailable: no connection is up and the pool's connections failed more often than the
	// restart policy allows; wraps the last failure. The pool keeps retrying at MaxBackoff.
	ErrUnavailable = messages.ErrUnavailable
	// ErrInvalidID: OutgoingGet was given an ID that no pool can issue (IDs are exactly 8
	// lowercase hex characters).
	ErrInvalidID = messages.ErrInvalidID
	// ErrInvalidConfig: the pool was built with arguments it cannot run with (unknown TLS code,
	// no certificate, nil resolver, empty listen address). Every call fails with it.
	ErrInvalidConfig = messages.ErrInvalidConfig
	// ErrUnauthorized: a server pool refused a connection from an address it does not allow.
	ErrUnauthorized = messages.ErrUnauthorized
	// ErrPoolFull: a server pool refused a stream or a connection because it is at its maximum.
	ErrPoolFull = messages.ErrPoolFull
	// ErrBadHandshake: a peer did not follow the stream handshake (wrong first byte, short or
	// late ID); the stream was discarded.
	ErrBadHandshake = messages.ErrBadHandshake
)

// OpError is the error every Pool method returns. It names the operation and the stream ID
// asked for, and wraps the cause. Like *net.OpError it satisfies net.Error: Timeout reports
// whether the cause is a timeout.
type OpError struct {
	Op  string // "OutgoingGet", "IncomingGet", ...
	ID  string // the stream ID asked for, if any
	Err error  // the cause: one of the Err values above, a context error, or a network error
}

// Error reports the operation, the stream ID if any, and the cause.
func (e *OpError) Error() string {
	if e.ID != "" {
		return e.Op + "(" + e.ID + "): " + e.Err.Error()
	}
	return e.Op + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *OpError) Unwrap() error { return e.Err }

// Timeout reports whether the operation failed because it ran out of time.
func (e *OpError) Timeout() bool {
	var t interface{ Timeout() bool }
	return errors.As(e.Err, &t) && t.Timeout()
}

// Temporary reports the same as Timeout: a timed-out call may succeed when retried.
func (e *OpError) Temporary() bool { return e.Timeout() }
