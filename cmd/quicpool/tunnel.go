package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool"
)

// The wire protocol of the tunnel commands, on top of the pool. The server takes every stream
// its pool receives as soon as it arrives (Accept) and waits for its first bytes. The client
// takes an idle stream for every TCP connection it accepts and writes tunnelHello on it, then
// the connection's bytes; the server reads tunnelHello, dials its target and answers one status
// byte (statusOK; or statusNoTarget or statusStopping, and the end of the stream) before the
// target's bytes. No control stream is used: every stream says for itself that it is a tunnel,
// so one server pool serves any number of clients, each on connections of its own.
//
// After the hello and the status, each direction of the stream is a series of frames: a 2-byte
// big-endian length (at most maxFrame) and that many bytes of the TCP connection. A frame of
// length 0 ends the direction's data (its TCP side half-closed). After it the direction carries
// one byte more, doneByte, once its side has read the other direction's end and passed
// everything before it on to its TCP connection; then the stream's FIN. A side that has read
// the peer's doneByte knows that the peer's TCP connection holds every byte it sent: a stop that
// waits for its tunnels (shutdown) then cuts none it counts as closed, even if its own doneByte
// is lost as it closes the connection (the peer then reports the tunnel broken, but closes its
// TCP connection as usual: see pipe). (QUIC, unlike TCP, has no kernel to finish the delivery
// once the process closes the connection.)
const (
	tunnelHello    = "qpt2" // the first bytes of a tunnel stream: protocol and version
	statusOK       = 0      // the server reached its target
	statusNoTarget = 1      // the server could not reach its target; the stream ends
	statusStopping = 2      // the server is shutting down and takes no tunnel; the stream ends

	frameHeader = 2        // the length of a frame's payload, big-endian
	maxFrame    = 32 << 10 // the most payload a frame carries
	doneByte    = 0x06     // after a direction's end: its side has all the other direction's data
)

// errBadFrame is a tunnel stream that breaks the framing: it ended without its end and done,
// carried a frame longer than maxFrame, or something else than doneByte after its end.
var errBadFrame = errors.New("the tunnel's stream broke the protocol")

// Timeouts of the tunnel commands.
const (
	streamTimeout = 5 * time.Second  // the client's wait for an idle stream when the server is up
	dialTimeout   = 5 * time.Second  // the server's dial of its target
	statusTimeout = 10 * time.Second // the client's wait for the server's status byte
	checkInterval = 100 * time.Millisecond
)

// Defaults of the flags both tunnel commands have.
const (
	defaultKeepAlive = 10 * time.Second
	// The -keepalive range: a connection silent for three periods is closed, so a shorter period
	// closes connections over a hiccup, and the library takes at most 24h.
	minKeepAlive = time.Second
	maxKeepAlive = 24 * time.Hour
	defaultGrace = 5 * time.Second
	defaultRetry = time.Second // the client's; the library's default, 5s, heals a long outage late
)

// newLogger returns the logger of a tunnel command, writing text lines to w: events that matter
// to a user always, and with verbose also every tunnel (at the debug level). Attribute keys
// never contain spaces (the pool's own log, passed on at -debug, has some; they become "_").
func newLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: noSpaces}))
}

func noSpaces(_ []string, a slog.Attr) slog.Attr {
	a.Key = strings.ReplaceAll(a.Key, " ", "_")
	return a
}

// poolLogger returns the option that passes the pool's own log to log when debug is set; the
// pool is silent otherwise.
func poolLogger(log *slog.Logger, debug bool) []quicpool.Option {
	if !debug {
		return nil
	}
	return []quicpool.Option{quicpool.WithLogger(log.With("from", "pool"))}
}

// reason is err in words for a log line: without the "quicpool: " prefixes of the library's
// errors.
func reason(err error) string {
	if err == nil {
		return ""
	}
	return strings.ReplaceAll(err.Error(), "quicpool: ", "")
}

// plural returns "1 tunnel", "2 tunnels".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// thinned thins out a log line that may come in a flood (refusals): at most one a second, which
// says how many were not logged. Not safe for concurrent use.
type thinned struct {
	last    time.Time
	skipped int
}

// log reports whether to log now, and how many were not logged since the last line.
func (l *thinned) log() (now bool, skipped int) {
	if time.Since(l.last) < time.Second {
		l.skipped++
		return false, 0
	}
	skipped, l.last, l.skipped = l.skipped, time.Now(), 0
	return true, skipped
}

// throttle is thinned, by kind, for lines that many goroutines log (one per tunnel): its state
// moves through a one-slot channel. The lines it holds back go to the debug level, so that -v
// still shows every one.
type throttle struct{ owner chan map[string]*thinned }

func newThrottle() throttle {
	t := throttle{owner: make(chan map[string]*thinned, 1)}
	t.owner <- map[string]*thinned{}
	return t
}

// level returns the level to log the next line of a kind at: level at most once a second, with
// how many lines of that kind were held back since the last one; slog.LevelDebug otherwise.
func (t throttle) level(kind string, level slog.Level) (slog.Level, int) {
	kinds := <-t.owner
	l := kinds[kind]
	if l == nil {
		l = &thinned{}
		kinds[kind] = l
	}
	now, skipped := l.log()
	t.owner <- kinds
	if !now {
		return slog.LevelDebug, 0
	}
	return level, skipped
}

// fingerprint returns the SHA-256 of a DER certificate in lowercase hex, as the server prints it
// and the client's -fingerprint takes it.
func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// parseFingerprint normalises a -fingerprint value: hex of 32 bytes, either case, colons
// allowed (as openssl prints it). "" stays "" (nothing to check).
func parseFingerprint(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	s = strings.ToLower(strings.ReplaceAll(s, ":", ""))
	if b, err := hex.DecodeString(s); err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("-fingerprint %q is not the hex of a SHA-256 (64 hex characters)", s)
	}
	return s, nil
}

// tracker counts a command's tunnels and their bytes, and lets shutdown wait for the open ones.
// The counts are a tally that one goroutine at a time owns: it takes it out of the one-slot
// channel, changes it and puts it back (state moves by channel, as everywhere in this project).
type tracker struct{ owner chan *tally }

type tally struct {
	open, total int   // tunnels open now, and opened since start
	waiting     int   // server: streams taken and waiting for their first bytes
	up, down    int64 // bytes toward the target and back, of every tunnel, as they flow
	draining    bool
	drained     chan struct{} // closed once draining and no tunnel is open
}

func newTracker() *tracker {
	t := &tracker{owner: make(chan *tally, 1)}
	t.owner <- &tally{drained: make(chan struct{})}
	return t
}

// with runs f with the tally, owning it.
func (t *tracker) with(f func(*tally)) {
	s := <-t.owner
	defer func() { t.owner <- s }()
	f(s)
}

// snapshot returns a copy of the tally.
func (t *tracker) snapshot() (c tally) {
	t.with(func(s *tally) { c = *s })
	return c
}

// begin counts a new tunnel; false once draining (refuse the tunnel then).
func (t *tracker) begin() (ok bool) {
	t.with(func(s *tally) {
		if ok = !s.draining; ok {
			s.open++
			s.total++
		}
	})
	return ok
}

// end counts a tunnel that has closed.
func (t *tracker) end() {
	t.with(func(s *tally) {
		s.open--
		if s.draining && s.open == 0 {
			close(s.drained)
		}
	})
}

// Open returns the number of open tunnels.
func (t *tracker) Open() int { return t.snapshot().open }

// waitingFor counts the streams waiting for their first bytes (n is +1 or -1).
func (t *tracker) waitingFor(n int) { t.with(func(s *tally) { s.waiting += n }) }

// carried counts bytes toward the target (up) and back (down).
func (t *tracker) carriedUp(n int64)   { t.with(func(s *tally) { s.up += n }) }
func (t *tracker) carriedDown(n int64) { t.with(func(s *tally) { s.down += n }) }

// drain refuses new tunnels from now on and returns the number still open and a channel closed
// once none is.
func (t *tracker) drain() (open int, drained <-chan struct{}) {
	t.with(func(s *tally) {
		if !s.draining {
			s.draining = true
			if s.open == 0 {
				close(s.drained)
			}
		}
		open, drained = s.open, s.drained
	})
	return open, drained
}

// shutdown is the end of a tunnel command after its ctx is done: stop (already done by the
// caller: no new tunnels), log "draining N tunnels", wait for them at most grace, then close
// the pool (which cuts what is left) and wait for the tunnels' goroutines.
func shutdown(log *slog.Logger, t *tracker, grace time.Duration, pool *quicpool.Pool, wg *sync.WaitGroup) {
	open, drained := t.drain()
	if open > 0 {
		log.Info(fmt.Sprintf("shutting down: draining %s", plural(open, "tunnel")), "grace", grace)
		timer := time.NewTimer(grace)
		select {
		case <-drained:
			log.Info("all tunnels closed")
		case <-timer.C:
			log.Warn(fmt.Sprintf("grace period over: closing %s", plural(t.Open(), "tunnel")))
		}
		timer.Stop()
	} else {
		log.Info("shutting down: no tunnel open")
	}
	pool.Close()
	wg.Wait()
	log.Info("stopped")
}

// counter is an io.Writer that counts what it passes on, for one tunnel (n) and for all (add).
type counter struct {
	w   io.Writer
	n   int64
	add func(int64)
}

func (c *counter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	c.add(int64(n))
	return n, err
}

// pipe copies between a TCP connection and a pool stream in both directions, in frames, and
// returns when both directions have ended and the peer has said it has everything (doneByte),
// with the bytes sent (TCP to stream) and received (stream to TCP) and the first error; it adds
// them to toStream and toTCP as they flow. first, if not nil, runs in the stream-to-TCP direction
// before any frame is read (the client reads the server's status byte there); its error aborts
// the tunnel, and is the one returned if the peer stopped reading before first returned. An EOF
// is passed on as a half-close: the TCP side's EOF ends the stream's data (the peer's TCP side
// reads EOF), the end of the stream's data closes the TCP write side, and the other direction
// keeps flowing until its own end. An error in either direction aborts both at once (see
// abort): the stream is reset, and so is the TCP connection unless its exchange was complete
// (both ends passed on: only the peer's done byte was missing), which is closed as usual so that
// its kernel delivers what it still holds. tcp and s are closed when pipe returns.
func pipe(tcp *net.TCPConn, s *quicpool.StreamConn, toStream, toTCP func(int64), first func() error) (sent, recv int64, err error) {
	down := &counter{w: tcp, add: toTCP}
	done := make(chan error, 2)
	firstDone := make(chan struct{}) // closed once first has returned and its error, if any, is in done
	peerEnded := make(chan struct{}) // closed once the stream's data has all gone to tcp
	sentEnd := make(chan struct{})   // closed once tcp's data has all gone to the stream, and its end
	aborted := make(chan struct{})   // closed on the first error
	go func() {
		var err error
		sent, err = sendFrames(tcp, s, toStream, sentEnd, peerEnded, aborted)
		if err != nil && stoppedByPeer(s) {
			// A peer that stops reading before first has run (the server refusing a tunnel)
			// has said why in what first reads: that is the error to report, and an abort now
			// would discard it unread.
			<-firstDone
		}
		done <- err
	}()
	go func() {
		if first != nil {
			if err := first(); err != nil {
				done <- err
				close(firstDone)
				return
			}
		}
		close(firstDone)
		done <- receiveFrames(s, down, tcp, peerEnded)
	}()
	for range 2 {
		if e := <-done; e != nil && err == nil {
			err = e
			close(aborted)
			if isClosed(sentEnd) && isClosed(peerEnded) { // nothing touches tcp any more
				abort(nil, s)
				_ = tcp.Close()
			} else {
				abort(tcp, s) // unblocks the other direction
			}
		}
	}
	if err == nil {
		_ = s.Close() // both directions ended cleanly: release the stream
		_ = tcp.Close()
	}
	return sent, down.n, err
}

// sendFrames copies tcp to s in frames until tcp's EOF, ends the data (and closes sentEnd: it
// does not touch tcp after that), and once the peer's data has all gone to tcp (peerEnded) says
// so (doneByte) and closes s's write side. It returns the bytes sent, and early with errAborted
// if the tunnel is aborted first.
func sendFrames(tcp *net.TCPConn, s *quicpool.StreamConn, count func(int64), sentEnd chan<- struct{}, peerEnded, aborted <-chan struct{}) (int64, error) {
	buf := make([]byte, frameHeader+maxFrame)
	var sent int64
	for {
		n, err := tcp.Read(buf[frameHeader:])
		if n > 0 {
			binary.BigEndian.PutUint16(buf, uint16(n))
			w, err := s.Write(buf[:frameHeader+n])
			payload := int64(max(w-frameHeader, 0))
			sent += payload
			count(payload) // after every write, failed or not
			if err != nil {
				return sent, err
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return sent, err
		}
	}
	if _, err := s.Write([]byte{0, 0}); err != nil { // the end of the data: the peer's TCP side reads EOF
		return sent, err
	}
	close(sentEnd)
	select {
	case <-peerEnded:
	case <-aborted:
		return sent, errAborted
	}
	if _, err := s.Write([]byte{doneByte}); err != nil {
		return sent, err
	}
	return sent, s.CloseWrite()
}

// isClosed reports whether ch is closed (the channels pipe closes and never sends on).
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// errAborted ends a direction that was waiting when the other one failed; pipe reports the
// other's error.
var errAborted = errors.New("tunnel aborted")

// receiveFrames copies the frames of s to w (tcp, counted) until the end of the data, closes
// tcp's write side and closes peerEnded, then reads the peer's doneByte and the stream's end.
// It returns the first error; a stream that ends before its doneByte is errBadFrame.
func receiveFrames(s *quicpool.StreamConn, w io.Writer, tcp *net.TCPConn, peerEnded chan<- struct{}) error {
	buf := make([]byte, maxFrame) // one for the tunnel: io.CopyN would allocate one per frame
	for {
		if _, err := io.ReadFull(s, buf[:frameHeader]); err != nil {
			return framingErr(err)
		}
		n := int(binary.BigEndian.Uint16(buf))
		if n == 0 {
			break
		}
		if n > maxFrame {
			return fmt.Errorf("%w: a frame of %d bytes (at most %d)", errBadFrame, n, maxFrame)
		}
		if _, err := io.ReadFull(s, buf[:n]); err != nil {
			return framingErr(err)
		}
		if _, err := w.Write(buf[:n]); err != nil {
			return err
		}
	}
	if err := tcp.CloseWrite(); err != nil {
		return err
	}
	close(peerEnded)
	var b [1]byte
	if _, err := io.ReadFull(s, b[:]); err != nil {
		return framingErr(err)
	}
	if b[0] != doneByte {
		return fmt.Errorf("%w: byte %#x after its end", errBadFrame, b[0])
	}
	if n, err := s.Read(b[:]); n > 0 || !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: more after its done (%v)", errBadFrame, err)
	}
	return nil
}

// framingErr is a read error of a framed stream: an EOF there (a FIN before the end of the data
// or the done) is errBadFrame, a peer that did not finish the tunnel.
func framingErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: it ended early", errBadFrame)
	}
	return err
}

// stoppedByPeer reports whether the peer stopped reading s (a STOP_SENDING): quic-go then cancels
// the write side's context with the peer's StreamError. The write or half-close that failed on
// it does not always say so: a Close after the stop fails with a plain error.
func stoppedByPeer(s *quicpool.StreamConn) bool {
	var se *quic.StreamError
	return errors.As(context.Cause(s.Context()), &se) && se.Remote
}

// abort ends a broken tunnel so that neither end mistakes it for a complete one: the stream is
// reset both ways (the peer's reads and writes fail) and the TCP connection is reset (RST, not
// FIN). It unblocks a Read or Write in progress on either, which StreamConn.Close does not
// promise for a Write (quic-go forbids closing a stream's write side while a Write is blocked),
// so after abort the stream must not be closed with Close. Either may be nil.
func abort(tcp *net.TCPConn, s *quicpool.StreamConn) {
	if s != nil {
		s.Stream.CancelRead(0)
		s.Stream.CancelWrite(0)
	}
	if tcp != nil {
		_ = tcp.SetLinger(0)
		_ = tcp.Close()
	}
}

// closed is the attributes of a tunnel's "tunnel closed" line: its bytes each way, its
// duration, and its error unless it ended cleanly.
func closed(up, down int64, start time.Time, err error) []any {
	attrs := []any{"bytes_up", up, "bytes_down", down, "duration", round(time.Since(start))}
	if err != nil && !errors.Is(err, io.EOF) {
		attrs = append(attrs, "error", reason(err))
	}
	return attrs
}
