package messages

import "errors"

// The errors the pool reports. Package quicpool re-exports each of them under the same name;
// test for them with errors.Is.
var (
	// ErrClosed is returned by every call made on a pool that has been closed, and by calls that
	// were waiting when Close was called.
	ErrClosed = errors.New("quicpool: pool closed")

	// ErrTimeout is returned when no stream arrived within the caller's timeout. It satisfies
	// net.Error with Timeout() == true.
	ErrTimeout error = timeoutError{}

	// ErrStreamGone is returned by OutgoingGet for an ID whose stream was idle in the pool but has
	// been discarded since: its connection died, or the pool was flushed.
	ErrStreamGone = errors.New("quicpool: stream gone (its connection died or the pool was flushed)")

	// ErrUnavailable is returned by Get calls while no connection is up and the pool has
	// escalated: its connections failed more often than the restart policy allows. It wraps the
	// last failure. The pool keeps retrying; the error clears when a connection comes up.
	ErrUnavailable = errors.New("quicpool: pool unavailable: connections keep failing")

	// ErrInvalidID is returned by OutgoingGet for an ID that no pool can ever issue: stream IDs
	// are exactly 8 lowercase hex characters.
	ErrInvalidID = errors.New("quicpool: invalid stream ID")

	// ErrInvalidConfig is wrapped by every error about the arguments a pool was built with: an
	// unknown TLS code, a missing certificate, a nil resolver, an empty listen address.
	ErrInvalidConfig = errors.New("quicpool: invalid configuration")

	// ErrUnauthorized is the reason a server pool gives when it refuses a connection from an
	// address other than the allowed client IP.
	ErrUnauthorized = errors.New("quicpool: client address not allowed")

	// ErrPoolFull is the reason a server pool gives when it refuses a stream or a connection
	// because it already holds its maximum.
	ErrPoolFull = errors.New("quicpool: pool full")

	// ErrBadHandshake is the reason a stream is discarded when its peer did not follow the
	// protocol: a handshake byte other than 0x00, or a stream ID that is short or late.
	ErrBadHandshake = errors.New("quicpool: bad stream handshake")
)

type timeoutError struct{}

func (timeoutError) Error() string   { return "quicpool: timed out waiting for a stream" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }
