package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	tunnelConns   = 8        // concurrent TCP connections pushed through a tunnel
	tunnelPayload = 64 << 10 // bytes each of them sends and reads back
	eventTimeout  = 30 * time.Second
)

// TestTunnelInProcess runs the server and the client in this process, forwards TCP connections
// to an echo target through them, and checks that the bytes come back intact and that a half-
// close travels through. Then it checks that the server survives its client: a client with the
// wrong fingerprint is refused, and a new client is served by the same server.
func TestTunnelInProcess(t *testing.T) {
	echo := startEcho(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	srvOut := newLineWriter()
	srvDone := make(chan error, 1)
	go func() {
		srvDone <- runServer(ctx, serverConfig{Listen: "127.0.0.1:0", Target: echo, MaxCap: 16, Log: newLogger(io.Discard, false)}, srvOut)
	}()
	addr, fp := parseServerLine(t, srvOut.next(t))

	client := func(fingerprint string) (listen string, stop func() error) {
		cctx, ccancel := context.WithCancel(ctx)
		out, done := newLineWriter(), make(chan error, 1)
		go func() {
			done <- runClient(cctx, clientConfig{Server: addr, Listen: "127.0.0.1:0", MinCap: 4, MaxCap: 16, TLS: "1",
				Fingerprint: fingerprint, Log: newLogger(io.Discard, false)}, out)
		}()
		select {
		case line := <-out.lines:
			listen = parseClientLine(t, line)
		case err := <-done:
			ccancel()
			return "", func() error { return err }
		case <-time.After(eventTimeout):
			t.Fatal("no startup line from the client")
		}
		return listen, func() error { ccancel(); return <-done }
	}

	listen, stop := client(fp)
	pushEcho(t, listen)
	if err := stop(); err != nil {
		t.Fatalf("client: %v", err)
	}

	_, stop = client(strings.Repeat("00", 32))
	if err := stop(); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("client with a wrong fingerprint: %v, want a mismatch error", err)
	}

	listen, stop = client(fp)
	pushEcho(t, listen)
	if err := stop(); err != nil {
		t.Fatalf("second client: %v", err)
	}

	cancel()
	if err := <-srvDone; err != nil {
		t.Fatalf("server: %v", err)
	}
}

// TestTunnelTargetDown checks that a tunnel whose target refuses the connection ends at once for
// the TCP client, with a reset or an EOF and no data, instead of hanging.
func TestTunnelTargetDown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	quiet := newLogger(io.Discard, false)
	srvOut, cliOut := newLineWriter(), newLineWriter()
	srvDone, cliDone := make(chan error, 1), make(chan error, 1)
	go func() {
		srvDone <- runServer(ctx, serverConfig{Listen: "127.0.0.1:0", Target: freePort(t, "tcp"), MaxCap: 4, Log: quiet}, srvOut)
	}()
	addr, fp := parseServerLine(t, srvOut.next(t))
	go func() {
		cliDone <- runClient(ctx, clientConfig{Server: addr, Listen: "127.0.0.1:0", MinCap: 2, MaxCap: 4, TLS: "1",
			Fingerprint: fp, Log: quiet}, cliOut)
	}()
	c, err := dialRetry(parseClientLine(t, cliOut.next(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(eventTimeout))
	_, _ = c.Write([]byte("hello"))
	got, err := io.ReadAll(c)
	var ne net.Error
	if len(got) != 0 || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("read %q, %v: want no data and a prompt end", got, err)
	}
	cancel()
	for _, done := range []chan error{cliDone, srvDone} {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestTunnelProcesses builds the command and runs `quicpool server` and `quicpool client` as
// processes, pushes bytes through the forwarded port, then interrupts both and checks that they
// exit 0.
func TestTunnelProcesses(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command to build with")
	}
	bin := filepath.Join(t.TempDir(), "quicpool")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	echo := startEcho(t)
	serverAddr := freePort(t, "udp")
	listen := freePort(t, "tcp")

	server := startProcess(t, bin, "server", "-listen", serverAddr, "-target", echo, "-max", "16", "-v")
	_, fp := parseServerLine(t, server.stdout.next(t))
	client := startProcess(t, bin, "client", "-server", serverAddr, "-listen", listen, "-min", "4", "-max", "16",
		"-fingerprint", fp, "-v")
	if got := parseClientLine(t, client.stdout.next(t)); got != listen {
		t.Fatalf("client listens on %s, want %s", got, listen)
	}

	pushEcho(t, listen)

	// The client first: the server outlives it, waiting for the next client.
	for _, p := range []*process{client, server} {
		if err := p.interrupt(); err != nil {
			t.Fatalf("%s: %v\nstderr:\n%s", p.name, err, p.stderr.String())
		}
		if !strings.Contains(p.stderr.String(), "tunnel closed") {
			t.Errorf("%s -v logged no tunnel:\n%s", p.name, p.stderr.String())
		}
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
	c, err := dialRetry(addr)
	if err != nil {
		return err
	}
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

// dialRetry dials addr until it accepts, for at most eventTimeout.
func dialRetry(addr string) (*net.TCPConn, error) {
	deadline := time.Now().Add(eventTimeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.(*net.TCPConn), nil
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

// startEcho starts a TCP echo service for the test: it copies every connection back to itself
// and half-closes it at EOF. It returns its address.
func startEcho(t *testing.T) string {
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
				if _, err := io.Copy(c, c); err == nil {
					_ = c.(*net.TCPConn).CloseWrite()
				}
			})
		}
	})
	return ln.Addr().String()
}

// freePort returns a loopback address whose port was free a moment ago.
func freePort(t *testing.T, network string) string {
	t.Helper()
	var c io.Closer
	var addr string
	if network == "udp" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		c, addr = pc, pc.LocalAddr().String()
	} else {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		c, addr = ln, ln.Addr().String()
	}
	_ = c.Close()
	return addr
}

var (
	serverLine = regexp.MustCompile(`^quicpool server: listening on (\S+), forwarding to \S+, fingerprint ([0-9a-f]{64})$`)
	clientLine = regexp.MustCompile(`^quicpool client: forwarding (\S+) to \S+, server fingerprint [0-9a-f]{64} \(verified\)$`)
)

// parseServerLine returns the address and fingerprint of the server's startup line.
func parseServerLine(t *testing.T, line string) (addr, fp string) {
	t.Helper()
	m := serverLine.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("unexpected server startup line %q", line)
	}
	return m[1], m[2]
}

// parseClientLine returns the listen address of the client's startup line.
func parseClientLine(t *testing.T, line string) string {
	t.Helper()
	m := clientLine.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("unexpected client startup line %q", line)
	}
	return m[1]
}

// lineWriter is an io.Writer that passes every complete line written to it on a channel. Lines
// beyond the channel's room are dropped: the tests need the first few.
type lineWriter struct {
	lines   chan string
	partial []byte
}

func newLineWriter() *lineWriter { return &lineWriter{lines: make(chan string, 16)} }

func (w *lineWriter) Write(b []byte) (int, error) {
	w.partial = append(w.partial, b...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			return len(b), nil
		}
		select {
		case w.lines <- string(w.partial[:i]):
		default:
		}
		w.partial = w.partial[i+1:]
	}
}

// next returns the next line, failing the test after eventTimeout.
func (w *lineWriter) next(t *testing.T) string {
	t.Helper()
	select {
	case line := <-w.lines:
		return line
	case <-time.After(eventTimeout):
		t.Fatal("no line within", eventTimeout)
		return ""
	}
}

// process is a quicpool command running as a child process.
type process struct {
	name   string
	cmd    *exec.Cmd
	stdout *lineWriter
	stderr *bytes.Buffer // read only after the process has exited
	exited chan struct{} // closed when cmd.Wait has returned
	err    error         // the result of cmd.Wait, once exited is closed
}

// startProcess runs bin with args. The process is killed at the end of the test if it is still
// running.
func startProcess(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	p := &process{name: args[0], cmd: exec.Command(bin, args...), stdout: newLineWriter(),
		stderr: new(bytes.Buffer), exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// interrupt sends SIGINT and waits for the process to exit: nil if it exited 0.
func (p *process) interrupt() error {
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		return err
	}
	select {
	case <-p.exited:
		var exit *exec.ExitError
		if errors.As(p.err, &exit) {
			return errors.New("exit status " + strconv.Itoa(exit.ExitCode()))
		}
		return p.err
	case <-time.After(eventTimeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("no exit within %s of SIGINT", eventTimeout)
	}
}

func TestSamePort(t *testing.T) {
	for _, tc := range []struct{ asked, actual, want string }{
		{"127.0.0.1:4433", "127.0.0.1:4433", "127.0.0.1:4433"},
		{"0.0.0.0:4433", "[::]:4433", "0.0.0.0:4433"}, // keep the host asked for
		{"127.0.0.1:0", "127.0.0.1:50123", "127.0.0.1:50123"},
		{":0", "[::]:50123", ":50123"},
	} {
		if got := samePort(tc.asked, tc.actual); got != tc.want {
			t.Errorf("samePort(%q, %q) = %q, want %q", tc.asked, tc.actual, got, tc.want)
		}
	}
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
