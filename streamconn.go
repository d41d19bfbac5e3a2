package quicpool

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool/internal/wire"
	"github.com/quicpool/quicpool/messages"
)

// StreamConn is the net.Conn every Get returns: one QUIC stream of the pool, with the addresses
// and TLS state of its own connection.
//
// Close releases the stream in both directions: it sends FIN after any buffered data and stops
// reading, so the stream's credit is returned to the peer at once, even if the peer's data was
// never read to EOF. To half-close (stop writing but keep reading), call CloseWrite, as with a
// *net.TCPConn.
type StreamConn struct {
	*quic.Stream
	conn    *quic.Conn
	id      string
	closing chan struct{} // one slot, filled by Close: a Write it interrupts says so (Write)
}

// NewStreamConn wraps a stream handed out by the coordinator (see package messages) the way
// Pool's methods do. It returns nil if s carries no stream (an answer with Err set): check s.Err
// first, since a nil *StreamConn stored in a net.Conn is not a nil net.Conn.
func NewStreamConn(s messages.Stream) *StreamConn {
	if s.Stream == nil {
		return nil
	}
	return &StreamConn{Stream: s.Stream, conn: s.Conn, id: s.ID, closing: make(chan struct{}, 1)}
}

// ID returns the stream's pool ID: 8 lowercase hex characters.
func (s *StreamConn) ID() string { return s.id }

// Close closes both directions of the stream and always returns nil: it stops reading, unblocks
// any Read or Write in progress (as net.Conn promises; they return errors, a Write
// quic.ErrStreamClosed), and sends FIN after the data already written. The stream is released
// whatever state the peer left it in (if the peer had already stopped reading, quic-go reports
// the write side as cancelled; there is nothing left to close then). Safe to call more than once,
// and from any goroutine.
func (s *StreamConn) Close() error {
	select {
	case s.closing <- struct{}{}:
	default: // closed already
	}
	s.Stream.CancelRead(wire.StreamCodeClosed)
	// quic-go's Close does not wake a blocked Write, and must not run while one is blocked: a
	// deadline in the past wakes it first.
	_ = s.Stream.SetWriteDeadline(time.Now())
	_ = s.Stream.Close()
	return nil
}

// Write writes b to the stream, as quic.Stream's Write does. A Write that Close interrupts
// returns quic.ErrStreamClosed, as a Write after Close does: not the timeout that Close's way of
// waking it (a write deadline) would otherwise return.
func (s *StreamConn) Write(b []byte) (int, error) {
	n, err := s.Stream.Write(b)
	// Close fills its slot before it sets the deadline that wakes this Write, and quic-go's
	// stream lock orders the two: a deadline error with the slot full is Close's.
	if err != nil && len(s.closing) > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		err = quic.ErrStreamClosed
	}
	return n, err
}

// CloseWrite half-closes the stream: it sends FIN after the data already written, and the
// stream can still be read to the peer's FIN. Proxy code that half-closes through
// interface{ CloseWrite() error }, as it does a *net.TCPConn, works unchanged. Close still has to
// be called to release the stream.
func (s *StreamConn) CloseWrite() error { return s.Stream.Close() }

// LocalAddr returns the local address of the stream's connection.
func (s *StreamConn) LocalAddr() net.Addr { return s.conn.LocalAddr() }

// RemoteAddr returns the remote address of the stream's connection.
func (s *StreamConn) RemoteAddr() net.Addr { return s.conn.RemoteAddr() }

// ConnectionState returns the TLS state of the stream's connection, for example to compare the
// peer certificate's fingerprint when the pool was built with TLS code "1".
func (s *StreamConn) ConnectionState() tls.ConnectionState { return s.conn.ConnectionState().TLS }

var _ net.Conn = (*StreamConn)(nil)
