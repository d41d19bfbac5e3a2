package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool"
)

const (
	tunnelConns   = 8        // concurrent TCP connections pushed through a tunnel
	tunnelPayload = 64 << 10 // bytes each of them sends and reads back
	eventTimeout  = 30 * time.Second
)

// inProc is a server or a client running in this process, for the tests that need no process.
type inProc struct {
	out, log *output
	cancel   context.CancelFunc
	ended    chan struct{} // closed when the run has returned
	err      error         // what it returned, once ended is closed
}

// waitFor waits for a line of o matching pattern and returns it.
func (r *inProc) waitFor(t *testing.T, o *output, pattern string) string {
	t.Helper()
	re := regexp.MustCompile(pattern)
	timeout := time.After(eventTimeout)
	for {
		line, _, grew := o.find(re, 0)
		if grew == nil {
			return line
		}
		select {
		case <-grew:
		case <-r.ended:
			t.Fatalf("ended (%v) before printing %q:\n%s\n%s", r.err, pattern, r.out, r.log)
		case <-timeout:
			t.Fatalf("no %q within %v:\n%s\n%s", pattern, eventTimeout, r.out, r.log)
		}
	}
}

// stop cancels the run and returns its error.
func (r *inProc) stop() error {
	r.cancel()
	<-r.ended
	return r.err
}

func startRun(f func(ctx context.Context, r *inProc) error) *inProc {
	ctx, cancel := context.WithCancel(context.Background())
	r := &inProc{out: newOutput(), log: newOutput(), cancel: cancel, ended: make(chan struct{})}
	go func() { r.err = f(ctx, r); close(r.ended) }()
	return r
}

// inProcessServer runs the server side in this process and returns it and its address and
// fingerprint.
func inProcessServer(t *testing.T, target string) (r *inProc, addr, fp string) {
	t.Helper()
	return inProcessServerGrace(t, target, time.Second)
}

// inProcessServerGrace is inProcessServer with -grace.
func inProcessServerGrace(t *testing.T, target string, grace time.Duration) (r *inProc, addr, fp string) {
	t.Helper()
	state := t.TempDir()
	r = startRun(func(ctx context.Context, r *inProc) error {
		return runServer(ctx, serverConfig{Listen: "127.0.0.1:0", Target: target, Clients: 2, StateDir: state,
			KeepAlive: defaultKeepAlive, Grace: grace, Log: newLogger(r.log, true)}, r.out)
	})
	t.Cleanup(func() { _ = r.stop() })
	m := serverLine.FindStringSubmatch(r.waitFor(t, r.out, serverLine.String()))
	return r, m[1], m[2]
}

// inProcessClient runs the client side in this process and returns it and the address it
// forwards.
func inProcessClient(t *testing.T, server, fp string) (r *inProc, listen string) {
	t.Helper()
	return inProcessClientGrace(t, server, fp, time.Second)
}

// inProcessClientGrace is inProcessClient with -grace.
func inProcessClientGrace(t *testing.T, server, fp string, grace time.Duration) (r *inProc, listen string) {
	t.Helper()
	r = startRun(func(ctx context.Context, r *inProc) error {
		return runClient(ctx, clientConfig{Server: server, Listen: "127.0.0.1:0", MinCap: 4, MaxCap: 16, Fingerprint: fp,
			KeepAlive: defaultKeepAlive, Retry: defaultRetry, Grace: grace, Log: newLogger(r.log, true)}, r.out)
	})
	t.Cleanup(func() { _ = r.stop() })
	m := clientLine.FindStringSubmatch(r.waitFor(t, r.out, clientLine.String()))
	return r, m[1]
}

// TestTunnelInProcess runs the server and the client in this process, forwards TCP connections
// to an echo target through them, and checks that the bytes come back intact, that a half-close
// travels through, and that every tunnel is logged with its bytes at -v. A client with the wrong
// fingerprint does not start.
func TestTunnelInProcess(t *testing.T) {
	server, addr, fp := inProcessServer(t, startEcho(t))
	client, listen := inProcessClient(t, addr, fp)
	client.waitFor(t, client.log, `msg="connected to the server"`)
	pushEcho(t, listen)
	if err := client.stop(); err != nil {
		t.Fatalf("client: %v", err)
	}
	want := fmt.Sprintf(`msg="tunnel closed" .*bytes_up=%d bytes_down=%d duration=\S+$`, tunnelPayload, tunnelPayload)
	client.waitFor(t, client.log, want)
	server.waitFor(t, server.log, want)

	wrong, _ := inProcessClient(t, addr, strings.Repeat("00", 32))
	select {
	case <-wrong.ended:
	case <-time.After(eventTimeout):
		t.Fatal("a client with a wrong fingerprint keeps running")
	}
	if wrong.err == nil || !strings.Contains(wrong.err.Error(), "does not match -fingerprint") {
		t.Fatalf("client with a wrong fingerprint: %v, want a mismatch error", wrong.err)
	}
	if strings.Contains(wrong.log.String(), "cannot connect to the server yet") {
		t.Errorf("a client that gives up says it will retry:\n%s", wrong.log)
	}
	if err := server.stop(); err != nil {
		t.Fatalf("server: %v", err)
	}
}

// A client whose server does not answer says so after its first attempts (within the QUIC
// handshake timeout, 5s), not only once its fast redials are over (20s), and keeps running.
func TestClientSaysEarlyThatNoServerAnswers(t *testing.T) {
	t.Parallel()
	silent, err := net.ListenPacket("udp", "127.0.0.1:0") // a port that takes datagrams and never answers
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	client, _ := inProcessClient(t, silent.LocalAddr().String(), strings.Repeat("00", 32))
	started := time.Now()
	client.waitFor(t, client.log, `msg="cannot connect to the server yet" reason="dialing \S+: timeout: no recent network activity"`)
	if took := time.Since(started); took > 10*time.Second {
		t.Errorf("the client said it only after %v", took.Round(time.Millisecond))
	}
	if err := client.stop(); err != nil {
		t.Fatalf("client: %v", err)
	}
}

// A tunnel whose target refuses the connection ends at once for the TCP client, with no data,
// and both sides say why.
func TestTunnelTargetDown(t *testing.T) {
	server, addr, fp := inProcessServer(t, closedPort(t))
	client, listen := inProcessClient(t, addr, fp)
	client.waitFor(t, client.log, `msg="connected to the server"`)
	// The client opens the tunnel without waiting for data, so the reset may come before Dial
	// returns.
	c, err := net.Dial("tcp", listen)
	if err == nil {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(eventTimeout))
		_, _ = c.Write([]byte("hello"))
		var got []byte
		got, err = io.ReadAll(c)
		var ne net.Error
		if len(got) != 0 || (errors.As(err, &ne) && ne.Timeout()) {
			t.Fatalf("read %q, %v: want no data and a prompt end", got, err)
		}
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("dial: %v, want the tunnel's reset", err)
	}
	client.waitFor(t, client.log, `level=WARN msg="tunnel closed" .* error="the server cannot reach its target"`)
	server.waitFor(t, server.log, `level=WARN msg="cannot reach the target"`)
}

// A server that refuses a tunnel stops reading the stream as it answers its status. A client
// whose upload fails on that stop before the status is read reports the status, not the failed
// write.
func TestPipeReportsTheStatusWhenThePeerStopsReadingFirst(t *testing.T) {
	cs, ss := streamPair(t)
	tcp, user := tcpPair(t)
	ss.CancelRead(0) // the server stops reading; its status is not sent yet
	failed := make(chan struct{})
	toStream := func(int64) { // called after every write to the stream
		if cs.Context().Err() != nil { // the stop has arrived: this write or the next fails
			select {
			case <-failed:
			default:
				close(failed)
			}
		}
	}
	sent := make(chan error, 1)
	go func() { // the server answers once the client's upload has failed
		select {
		case <-failed:
		case <-time.After(eventTimeout):
			sent <- errors.New("no write failed after the server stopped reading")
			return
		}
		_, err := ss.Write([]byte{statusNoTarget})
		_ = ss.Close() // as the server does; the client may have reset the stream already
		sent <- err
	}()
	result := make(chan error, 1)
	go func() {
		_, _, err := pipe(tcp, cs, toStream, func(int64) {}, func() error { return awaitStatus(cs, nil) })
		result <- err
	}()
	written := make(chan struct{})
	go func() { // the TCP client sends until its connection is cut
		defer close(written)
		for {
			if _, err := user.Write(make([]byte, 1024)); err != nil {
				return
			}
		}
	}()
	select {
	case err := <-result:
		if !errors.Is(err, errNoTarget) {
			t.Errorf("pipe: %v, want %v", err, errNoTarget)
		}
	case <-time.After(eventTimeout):
		t.Fatal("pipe did not return")
	}
	if err := <-sent; err != nil {
		t.Errorf("the server's status: %v", err)
	}
	<-written
}

// The peer's stop is seen on the stream itself: a half-close after it fails with an error that
// does not say why, and pipe must still wait for the status then.
func TestStoppedByPeer(t *testing.T) {
	cs, ss := streamPair(t)
	if stoppedByPeer(cs) {
		t.Fatal("a stream whose peer reads is reported stopped")
	}
	ss.CancelRead(0)
	select {
	case <-cs.Context().Done():
	case <-time.After(eventTimeout):
		t.Fatal("the peer's STOP_SENDING did not arrive")
	}
	err := cs.CloseWrite()
	var se *quic.StreamError
	if err == nil || errors.As(err, &se) {
		t.Fatalf("half-close after the stop: %v, want an error that is not a StreamError", err)
	}
	if !stoppedByPeer(cs) {
		t.Error("a stream whose peer stopped reading is not reported stopped")
	}

	own, _ := streamPair(t)
	own.CancelWrite(0)
	if stoppedByPeer(own) {
		t.Error("a stream reset by this side is reported stopped by the peer")
	}
}

// streamPair returns the two ends of one pool stream, the client's and the server's, between
// pools on the loopback interface that are closed with the test.
func streamPair(t *testing.T) (client, server *quicpool.StreamConn) {
	t.Helper()
	tlsConf, _, err := selfSigned()
	if err != nil {
		t.Fatal(err)
	}
	sp := quicpool.NewServerPool(1, "", tlsConf, "127.0.0.1:0", 10*time.Second)
	go sp.ServerManager()
	t.Cleanup(sp.Close)
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	if err := sp.WaitReady(ctx, 0); err != nil {
		t.Fatal(err)
	}
	cp := quicpool.NewClientPool(1, 1, 100*time.Millisecond, time.Second, 10*time.Second, "1", "localhost",
		quicpool.StaticAddr(sp.Addr()))
	go cp.ClientManager()
	t.Cleanup(cp.Close)
	if client, err = cp.Accept(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	if server, err = sp.Get(ctx, client.ID()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = server.Close() })
	return client, server
}

// tcpPair returns the two ends of a loopback TCP connection, closed with the test.
func tcpPair(t *testing.T) (accepted, dialed *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d, err := net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	a, err := ln.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a, d
}

// Before the client has ever reached its server, it refuses TCP connections at once.
func TestClientRefusesWhileServerUnreachable(t *testing.T) {
	client, listen := inProcessClient(t, freeUDP(t), strings.Repeat("ab", 32))
	start := time.Now()
	c, err := net.Dial("tcp", listen) // the reset may come before Dial returns
	if err == nil {
		defer c.Close()
		_ = c.SetDeadline(start.Add(eventTimeout))
		var n int
		n, err = c.Read(make([]byte, 1))
		if n != 0 {
			t.Fatalf("read %d bytes through a client that has no server", n)
		}
	}
	if err == nil || time.Since(start) > time.Second {
		t.Fatalf("%v after %v: want an error at once", err, time.Since(start))
	}
	client.waitFor(t, client.log, `level=WARN msg="refused a connection: the server is unreachable"`)
}

// A server that allows other addresses refuses the client and says so; the client keeps
// trying, says why it cannot connect, and refuses TCP connections meanwhile.
func TestServerAllow(t *testing.T) {
	state := t.TempDir()
	server := startRun(func(ctx context.Context, r *inProc) error {
		return runServer(ctx, serverConfig{Listen: "127.0.0.1:0", Target: startEcho(t), Clients: 1, StateDir: state,
			Allow: []string{"10.0.0.0/8", "192.0.2.1"}, KeepAlive: defaultKeepAlive, Log: newLogger(r.log, false)}, r.out)
	})
	t.Cleanup(func() { _ = server.stop() })
	m := serverLine.FindStringSubmatch(server.waitFor(t, server.out, serverLine.String()))
	client, listen := inProcessClient(t, m[1], m[2])
	server.waitFor(t, server.log, `level=WARN msg="refused a client" client=127\.0\.0\.1:\d+ reason=`)
	client.waitFor(t, client.log, `msg="cannot connect to the server yet" reason=".*CONNECTION_REFUSED`)
	if _, err := get(listen, "/", 5*time.Second); err == nil {
		t.Fatal("a client refused by its server forwarded a connection")
	}
}

// pushEcho opens tunnelConns connections to addr at once (an echo service behind a tunnel),
// sends tunnelPayload random bytes on each, half-closes it, and checks that exactly the same
// bytes come back followed by EOF.
func pushEcho(t *testing.T, addr string) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range tunnelConns {
		wg.Go(func() {
			if err := echoOnce(addr); err != nil {
				t.Errorf("connection %d: %v", i, err)
			}
		})
	}
	wg.Wait()
}

func echoOnce(addr string) error {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	c := conn.(*net.TCPConn)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(eventTimeout))
	sent := make([]byte, tunnelPayload)
	_, _ = rand.Read(sent)
	written := make(chan error, 1)
	go func() {
		_, err := c.Write(sent)
		if err == nil {
			err = c.CloseWrite()
		}
		written <- err
	}()
	got, err := io.ReadAll(c) // until the EOF that the echo's half-close sends back
	if werr := <-written; werr != nil {
		return fmt.Errorf("write: %w", werr)
	}
	if err != nil {
		return fmt.Errorf("read after %d bytes: %w", len(got), err)
	}
	if !bytes.Equal(got, sent) {
		return fmt.Errorf("echo differs: got %d bytes, sent %d", len(got), len(sent))
	}
	return nil
}

// startEcho starts a TCP echo service for the test: it copies every connection back to itself
// and half-closes it at EOF. It returns its address.
func startEcho(t *testing.T) string {
	t.Helper()
	return startTarget(t, func(c *net.TCPConn) {
		if _, err := io.Copy(c, c); err == nil {
			_ = c.CloseWrite()
		}
	})
}

// startTarget starts a TCP target on loopback that serves every connection with serve, on a
// goroutine of its own, within eventTimeout, and closes it after; it returns its address. The
// target stops when the test ends.
func startTarget(t *testing.T, serve func(*net.TCPConn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(eventTimeout))
				serve(c.(*net.TCPConn))
			})
		}
	})
	return ln.Addr().String()
}

// closedPort returns a loopback TCP address whose port was free a moment ago.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestParseFingerprint(t *testing.T) {
	hex := strings.Repeat("ab", 32)
	colons := strings.TrimSuffix(strings.Repeat("AB:", 32), ":")
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"", "", true},
		{hex, hex, true},
		{colons, hex, true}, // as openssl x509 -fingerprint -sha256 prints it
		{"abc", "", false},
		{strings.Repeat("ab", 20), "", false}, // SHA-1 length
		{strings.Repeat("zz", 32), "", false},
	} {
		got, err := parseFingerprint(tc.in)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("parseFingerprint(%q) = %q, %v", tc.in, got, err)
		}
	}
}

func TestClientAddr(t *testing.T) {
	for addr, wantHost := range map[string]string{
		"127.0.0.1:4433":  "127.0.0.1",
		"[::]:4433":       "",
		"0.0.0.0:4433":    "",
		"10.1.2.3:4433":   "10.1.2.3",
		"[2001:db8::1]:5": "2001:db8::1",
	} {
		host, _, err := net.SplitHostPort(clientAddr(addr))
		if err != nil || (wantHost != "" && host != wantHost) || host == "" || host == "::" || host == "0.0.0.0" {
			t.Errorf("clientAddr(%q) = %q, want host %q (or this host's name)", addr, clientAddr(addr), wantHost)
		}
	}
}

// A throttle lets one line a second of each kind through at its level, sends the others of that
// kind to the debug level, and says with the next line of the kind it lets through how many it
// held back.
func TestThrottle(t *testing.T) {
	th := newThrottle()
	if level, skipped := th.level("a", slog.LevelWarn); level != slog.LevelWarn || skipped != 0 {
		t.Fatalf("first line: %v, %d held back; want WARN, 0", level, skipped)
	}
	for i := range 3 {
		if level, _ := th.level("a", slog.LevelWarn); level != slog.LevelDebug {
			t.Fatalf("line %d in the same second: %v, want DEBUG", i+2, level)
		}
	}
	if level, skipped := th.level("b", slog.LevelWarn); level != slog.LevelWarn || skipped != 0 {
		t.Fatalf("first line of another kind: %v, %d held back; want WARN, 0", level, skipped)
	}
	kinds := <-th.owner // a second passes
	kinds["a"].last = kinds["a"].last.Add(-time.Second)
	th.owner <- kinds
	if level, skipped := th.level("a", slog.LevelWarn); level != slog.LevelWarn || skipped != 3 {
		t.Fatalf("a second later: %v, %d held back; want WARN, 3", level, skipped)
	}
}

// A server that stops while a tunnel's last bytes are still on their way waits for the client to
// have them all: a TCP client that reads nothing until the server is draining still gets every
// byte its target sent, and a clean end. (Before the tunnel protocol's done byte, the server
// closed its connection once its own side had written the bytes, and the client lost those not
// yet passed on to its TCP connection.)
func TestServerStopDeliversTheTunnelsTail(t *testing.T) {
	const size = 32 << 20 // beyond what the client's QUIC window and TCP buffers hold
	server, addr, fp := inProcessServerGrace(t, startSource(t, size), eventTimeout)
	client, listen := inProcessClient(t, addr, fp)
	client.waitFor(t, client.log, `msg="connected to the server"`)

	c, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc := c.(*net.TCPConn)
	_ = tc.SetDeadline(time.Now().Add(eventTimeout))
	if err := tc.CloseWrite(); err != nil { // nothing to send: the tunnel ends with the target's bytes
		t.Fatal(err)
	}
	server.waitFor(t, server.log, `msg="tunnel opened"`)
	server.cancel() // the stop, while the client holds most of the bytes unread
	server.waitFor(t, server.log, `msg="shutting down: draining 1 tunnel"`)
	got, err := readSlowly(tc)
	if err != nil || got != size {
		t.Fatalf("the TCP client read %d of %d bytes, then %v\n%s\n%s", got, size, err, server.log, client.log)
	}
	server.waitFor(t, server.log, `msg="all tunnels closed"`)
}

// A client that stops while a tunnel's upload is still on its way waits for the server to have
// passed it all on: a target that half-closes at once and reads slowly still gets every byte the
// TCP client sent before the client's stop, and a clean end.
func TestClientStopDeliversTheTunnelsTail(t *testing.T) {
	const size = 32 << 20
	sink, got := startSink(t)
	_, addr, fp := inProcessServer(t, sink)
	client, listen := inProcessClientGrace(t, addr, fp, eventTimeout)
	client.waitFor(t, client.log, `msg="connected to the server"`)

	c, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(eventTimeout))
	uploaded := make(chan error, 1)
	go func() {
		_, err := c.Write(make([]byte, size))
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		uploaded <- err
	}()
	client.waitFor(t, client.log, `msg="tunnel opened"`)
	client.cancel() // the stop, while most of the upload is still on its way
	client.waitFor(t, client.log, `msg="shutting down: draining 1 tunnel"`)
	if err := <-uploaded; err != nil {
		t.Fatalf("upload: %v", err)
	}
	select {
	case r := <-got:
		if r.err != nil || r.n != size {
			t.Fatalf("the target read %d of %d bytes, then %v\n%s", r.n, size, r.err, client.log)
		}
	case <-time.After(eventTimeout):
		t.Fatal("the target never read to the end")
	}
	client.waitFor(t, client.log, `msg="all tunnels closed"`)
}

// sinkResult is what startSink's target read from a connection, and the error that ended it
// (nil for EOF).
type sinkResult struct {
	n   int64
	err error
}

// startSink starts a TCP target that half-closes every connection at once and reads it slowly
// (readSlowly) to its end; it returns its address and a channel of what it read.
func startSink(t *testing.T) (string, <-chan sinkResult) {
	t.Helper()
	got := make(chan sinkResult, 16)
	return startTarget(t, func(c *net.TCPConn) {
		_ = c.CloseWrite()
		n, err := readSlowly(c)
		got <- sinkResult{n, err}
	}), got
}

// readSlowly reads r to its end, 64 KiB at a time with a pause of a millisecond after each: a
// reader slower than the path, so that the bytes not yet read pile up in the buffers before it.
// It returns the bytes read and the error that ended the reading, nil for EOF.
func readSlowly(r io.Reader) (int64, error) {
	buf := make([]byte, 64<<10)
	var got int64
	for {
		n, err := r.Read(buf)
		got += int64(n)
		if errors.Is(err, io.EOF) {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		time.Sleep(time.Millisecond) // the reader's pace: the workload, not a wait for an event
	}
}

// startSource starts a TCP target that sends size bytes to every connection and then closes it,
// and returns its address.
func startSource(t *testing.T, size int) string {
	t.Helper()
	return startTarget(t, func(c *net.TCPConn) { _, _ = c.Write(make([]byte, size)) })
}

// A tunnel stream that breaks the framing is an error, never a clean end: a FIN before the end
// of the data or before the done byte (a peer that did not finish the tunnel), a frame longer
// than maxFrame, another byte than doneByte, or more after it.
func TestReceiveFramesRefusesBrokenStreams(t *testing.T) {
	for _, tc := range []struct {
		name string
		sent []byte
	}{
		{"FIN inside a frame", []byte{0, 5, 'a', 'b'}},
		{"FIN before the end", []byte{0, 1, 'a'}},
		{"FIN before the done byte", []byte{0, 1, 'a', 0, 0}},
		{"a frame too long", []byte{0xff, 0xff}},
		{"another byte than done", []byte{0, 0, 'x'}},
		{"more after done", []byte{0, 0, doneByte, 'x'}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs, ss := streamPair(t)
			tcp, _ := tcpPair(t)
			if _, err := ss.Write(tc.sent); err != nil {
				t.Fatal(err)
			}
			if err := ss.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			_ = cs.SetReadDeadline(time.Now().Add(eventTimeout))
			err := receiveFrames(cs, io.Discard, tcp, make(chan struct{}))
			if !errors.Is(err, errBadFrame) {
				t.Fatalf("receiveFrames: %v, want %v", err, errBadFrame)
			}
		})
	}
}

// A tunnel that fails once its TCP exchange is complete (both ends passed on, only the peer's
// done byte missing, as when the peer's connection closes right after it sent the byte) closes
// its TCP connection as usual, not with a reset: the TCP side still reads every byte the stream
// carried, which its kernel holds (a reset would discard what it has not sent yet), and a clean
// end.
func TestPipeClosesACompleteTCPExchangeGently(t *testing.T) {
	cs, ss := streamPair(t)
	tcp, user := tcpPair(t)
	// The TCP side reads nothing until the end, through a small window: most of the payload
	// waits in the send queue of the pipe's socket, whose buffer holds it all.
	_ = user.SetReadBuffer(16 << 10)
	_ = tcp.SetWriteBuffer(1 << 20)
	payload := bytes.Repeat([]byte("tail"), 4*maxFrame/4) // four full frames
	result := make(chan error, 1)
	go func() {
		_, _, err := pipe(tcp, cs, func(int64) {}, func(int64) {}, nil)
		result <- err
	}()
	var frames []byte
	for chunk := range slices.Chunk(payload, maxFrame) {
		frames = append(binary.BigEndian.AppendUint16(frames, uint16(len(chunk))), chunk...)
	}
	frames = append(frames, 0, 0) // the end of the peer's data
	if _, err := ss.Write(frames); err != nil {
		t.Fatal(err)
	}
	if err := user.CloseWrite(); err != nil { // the TCP side has nothing to send
		t.Fatal(err)
	}
	_ = ss.SetReadDeadline(time.Now().Add(eventTimeout))
	got := make([]byte, 3)
	if _, err := io.ReadFull(ss, got); err != nil || !bytes.Equal(got, []byte{0, 0, doneByte}) {
		t.Fatalf("the pipe's end and done: %v, %v", got, err) // sent once the payload went to tcp
	}
	ss.CancelRead(1) // the peer's side breaks before its done byte
	ss.CancelWrite(1)
	select {
	case err := <-result:
		if err == nil {
			t.Fatal("a tunnel whose peer broke before its done byte ended cleanly")
		}
	case <-time.After(eventTimeout):
		t.Fatal("pipe did not return")
	}
	_ = user.SetReadDeadline(time.Now().Add(eventTimeout))
	read, err := io.ReadAll(user)
	if err != nil || !bytes.Equal(read, payload) {
		t.Fatalf("the TCP side read %d of %d bytes, then %v", len(read), len(payload), err)
	}
}
