package actors

import (
	"errors"
	"fmt"
	"time"

	"github.com/quicpool/quicpool/internal/core"
	"github.com/quicpool/quicpool/internal/wire"
)

// errNoCredit is why a client's stream open failed: the server gave no stream credit within the
// handshake timeout.
var errNoCredit = errors.New("quicpool: no stream credit from the server")

// trustWindow is how long a client's count of the streams its server closed before any was
// taken runs before it starts over. A hostile server closes streams as fast as they come and is
// judged within seconds; an honest one takes back a connection's idle streams now and then (when
// a newcomer shrinks the connection's share), which on a connection nobody takes streams from
// would, over hours, add up to the same ratio.
const trustWindow = time.Minute

// trust is a client's record of how its server keeps to the protocol on one connection. A broken
// or hostile server is cut off with ErrViolation, and the supervisor reconnects with backoff,
// instead of the client opening and discarding streams in a loop. An honest server is never cut
// off: a full one that holds streams without an ID has given this connection idle streams, and
// a flush resets the streams at most once before the client takes one.
type trust struct {
	control      bool      // the control ID was issued on this connection
	fresh        int       // streams handshaken in this window
	taken        int       // streams handed out to callers
	peerLost     int       // streams the server closed before this side took them, in this window
	window       time.Time // when the window of fresh and peerLost began; zero before the first close
	failingSince time.Time // the first of the opens that failed since the last handshake; zero if none
	violated     bool      // the connection is being closed for a violation
}

// handshaken records a completed handshake with id; duplicate reports that a stream with that ID
// is idle already.
func (t *trust) handshaken(id string, duplicate bool) error {
	t.fresh++
	t.failingSince = time.Time{}
	switch {
	case duplicate:
		return fmt.Errorf("%w: it issued stream ID %s while a stream with that ID is idle", core.ErrViolation, id)
	case id == wire.ControlID && t.control:
		return fmt.Errorf("%w: it issued the control stream %s twice", core.ErrViolation, id)
	case id == wire.ControlID:
		t.control = true
	}
	return nil
}

// peerClosed records a stream the server closed before this side took it, at now; hold is the
// most idle streams this connection may hold. Closing most fresh streams before any is taken,
// more than two flushes would (each closes what the connection holds and the control stream),
// within trustWindow, is a violation.
func (t *trust) peerClosed(hold int, now time.Time) error {
	switch {
	case t.window.IsZero():
		t.window = now
	case now.Sub(t.window) > trustWindow:
		t.window, t.fresh, t.peerLost = now, 0, 0
	}
	t.peerLost++
	if t.taken == 0 && t.peerLost > 2*hold+8 && 4*t.peerLost > 3*t.fresh {
		return fmt.Errorf("%w: it closed %d of the %d streams it handshook before any was taken",
			core.ErrViolation, t.peerLost, t.fresh)
	}
	return nil
}

// closesDominate reports whether the server closes more streams than it leaves to be taken, beyond
// what a flush or two explains: replacements for the streams it closes then wait for the refill
// tick.
func (t *trust) closesDominate(hold int) bool { return t.peerLost > 2*hold && 2*t.peerLost > t.fresh }

// openFailed judges a failed stream open. Opens failing without a break for longer than limit
// are a violation when the server gives no credit although this side never took a stream (its
// own streams in use do not count against the server), or when no ID comes while this connection
// holds no idle stream (an honest server that is full holds new streams without an ID, but has
// given this connection idle ones).
func (t *trust) openFailed(err error, idle int, now time.Time, limit time.Duration) error {
	if t.failingSince.IsZero() {
		t.failingSince = now
	}
	failing := now.Sub(t.failingSince)
	if failing <= limit {
		return nil
	}
	if noCredit := errors.Is(err, errNoCredit); (noCredit && t.taken == 0) || (!noCredit && idle == 0) {
		return fmt.Errorf("%w: no stream handshake completed in %v (%w)", core.ErrViolation, failing.Round(time.Millisecond), err)
	}
	return nil
}
