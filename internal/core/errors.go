// Package core holds what package quicpool and package actors share and no one outside the
// module may touch: the sentinel errors (package quicpool exports and documents them), the one
// configuration value a pool is built from, and the messages only the Pool facade sends.
package core

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The sentinel errors. Package quicpool exports each under the name Err<Name> and documents it.
var (
	ErrClosed                = errors.New("quicpool: pool closed")
	ErrTimeout         error = timeoutError{}
	ErrStreamGone            = errors.New("quicpool: stream gone (its connection died or the pool was flushed)")
	ErrUnavailable           = errors.New("quicpool: no connection to the server")
	ErrInvalidID             = errors.New("quicpool: invalid stream ID")
	ErrInvalidConfig         = errors.New("quicpool: invalid configuration")
	ErrInvalidArgument       = errors.New("quicpool: invalid argument")
	ErrUnauthorized          = errors.New("quicpool: client address not allowed")
	ErrPoolFull              = errors.New("quicpool: pool full")
	ErrBadHandshake          = errors.New("quicpool: bad stream handshake")
	ErrViolation             = errors.New("quicpool: protocol violation by the server")
	ErrPanic                 = errors.New("quicpool: panic")
)

// SilentError is why a client cannot serve while its connections are up but none answers: the
// peer was last heard at Since. quicpool exports it as SilentError.
type SilentError struct{ Since time.Time }

func (e *SilentError) Error() string {
	return fmt.Sprintf("quicpool: no answer from the server for %v", time.Since(e.Since).Round(time.Millisecond))
}

// Also is err matching sentinel as well, with err's own text: for an err that already says what
// sentinel would (a server's refusal across the wire), or for which sentinel's text would be
// wrong (a server that cannot listen has no "connection to the server" to speak of).
func Also(sentinel, err error) error { return alsoError{sentinel, err} }

type alsoError struct{ sentinel, err error }

func (e alsoError) Error() string   { return e.err.Error() }
func (e alsoError) Unwrap() []error { return []error{e.sentinel, e.err} }

type timeoutError struct{}

func (timeoutError) Error() string   { return "quicpool: timed out waiting for a stream" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// Deadline is the error of a call whose context's deadline passed: ErrTimeout and
// context.DeadlineExceeded at once, and, when the pool has no connection, why (cause, which may
// be nil).
func Deadline(cause error) error {
	if cause == nil {
		return deadline
	}
	return fmt.Errorf("%w: %w", deadline, cause)
}

var deadline = fmt.Errorf("%w (%w)", ErrTimeout, context.DeadlineExceeded)
