// Package wire is the NodePass stream protocol: the handshake a client writes on every new
// stream, the ID a server answers with, and the error codes the pool puts on the wire. Every
// byte a peer sends the pool is parsed here; each parser has a fuzz target.
package wire

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/quic-go/quic-go"

	"github.com/quicpool/quicpool/internal/core"
)

// The NodePass stream handshake: the client writes HandshakeByte on a new bidirectional stream,
// the server answers with IDLen bytes of ID. The ID a caller sees is those bytes in lowercase hex.
const (
	HandshakeByte = 0x00
	IDLen         = 4 // a Key holds the bytes of one ID
	// ControlID is the first ID a server pool issues, exactly once. NodePass uses that stream as
	// its control channel.
	ControlID = "00000000"
)

// ParseID checks that id is the lowercase hex form of IDLen bytes and returns those bytes (zero
// bytes if it is not). It decodes each digit in the pass that checks it, a third faster than
// checking every digit and then calling hex.Decode (13.5 to 9ns, BenchmarkKeyOf): a take by ID
// parses its ID twice.
func ParseID(id string) ([IDLen]byte, error) {
	var raw [IDLen]byte
	if len(id) != 2*IDLen {
		return raw, fmt.Errorf("%w: %q is not %d hex characters", core.ErrInvalidID, id, 2*IDLen)
	}
	for i := range raw {
		hi, okHi := nibble(id[2*i])
		lo, okLo := nibble(id[2*i+1])
		if !okHi || !okLo {
			return [IDLen]byte{}, fmt.Errorf("%w: %q is not lowercase hex", core.ErrInvalidID, id)
		}
		raw[i] = hi<<4 | lo
	}
	return raw, nil
}

// nibble returns the value of the lowercase hex digit c, and false if c is not one.
func nibble(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// Key is an ID's IDLen bytes read as one big-endian number: the compact form the pool files its
// streams under (a string ID costs a 16-byte header and a separate allocation).
type Key uint32

// KeyOf returns the Key of id, or ParseID's error when id is not an ID.
func KeyOf(id string) (Key, error) {
	raw, err := ParseID(id)
	return Key(binary.BigEndian.Uint32(raw[:])), err
}

// ID returns the ID whose bytes k holds: KeyOf(k.ID()) is k.
func (k Key) ID() string {
	var raw [IDLen]byte
	binary.BigEndian.PutUint32(raw[:], uint32(k))
	return hex.EncodeToString(raw[:])
}

// ReadID reads the server's answer to a handshake: exactly IDLen bytes.
func ReadID(r io.Reader) (string, error) {
	var ir IDReader
	return ir.Read(r)
}

// IDReader reads the server's answer to a handshake over as many calls as it takes: a call that
// ends early (at a read deadline, say) keeps the bytes it had, and the next call goes on from
// there. The zero IDReader is ready to use.
type IDReader struct {
	raw [IDLen]byte
	n   int // bytes of raw read so far
}

// Read reads the rest of the ID from r and returns it once all IDLen bytes are in. An error
// wraps core.ErrBadHandshake and the reader's error (a deadline's os.ErrDeadlineExceeded
// included), and leaves the bytes read so far in ir.
func (ir *IDReader) Read(r io.Reader) (string, error) {
	k, err := io.ReadFull(r, ir.raw[ir.n:])
	ir.n += k
	if err != nil {
		return "", &readError{what: "reading stream ID", err: err}
	}
	return hex.EncodeToString(ir.raw[:]), nil
}

// readError is a handshake read that failed. It wraps core.ErrBadHandshake and the reader's
// error, and builds its message only when asked: a read that ends at its deadline is routine on
// a busy client (readIDs hands the stream to a goroutine and reads on), and fmt.Errorf's
// formatting and allocations were most of such a read's own cost.
type readError struct {
	what string // what was being read
	err  error
}

func (e *readError) Error() string {
	return core.ErrBadHandshake.Error() + ": " + e.what + ": " + e.err.Error()
}

// Is reports that e is a bad handshake; Unwrap gives the reader's error. (An Unwrap that returned
// both would build a slice on every errors.Is.)
func (e *readError) Is(target error) bool { return target == core.ErrBadHandshake }

func (e *readError) Unwrap() error { return e.err }

// ReadHandshake reads the client's first byte and checks that it is HandshakeByte.
func ReadHandshake(r io.Reader) error {
	var b [1]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return &readError{what: "reading handshake byte", err: err}
	}
	if b[0] != HandshakeByte {
		return fmt.Errorf("%w: handshake byte 0x%02x, want 0x%02x", core.ErrBadHandshake, b[0], HandshakeByte)
	}
	return nil
}

// Error codes the pool puts on the wire.
const (
	// StreamCodeClosed cancels the read side of a stream its user closed (StreamConn.Close).
	StreamCodeClosed quic.StreamErrorCode = 0
	// StreamCodeDiscarded resets a stream the pool discards: refused, failed its handshake,
	// flushed, or left over when its shard stopped.
	StreamCodeDiscarded quic.StreamErrorCode = 1
	// ConnCodeClosed closes a connection whose pool or shard is shutting down.
	ConnCodeClosed quic.ApplicationErrorCode = 0
	// ConnCodeRefused closes a connection the server pool does not accept: an address that is
	// not allowed, or no free shard slot.
	ConnCodeRefused quic.ApplicationErrorCode = 1
	// ConnCodeViolation closes a connection whose peer broke the protocol (a client closes its
	// connection to a server that issues duplicate IDs, for example).
	ConnCodeViolation quic.ApplicationErrorCode = 2
)

// Discard closes both directions of a stream the pool gives up on, so that its stream credit is
// released on both sides at once.
func Discard(s *quic.Stream) {
	s.CancelRead(StreamCodeDiscarded)
	s.CancelWrite(StreamCodeDiscarded)
}
