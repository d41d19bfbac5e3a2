package quicpool_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool"
	"github.com/quicpool/quicpool/messages"
	"github.com/stretchr/testify/require"
)

// childHeldEnv makes the test binary run a server pool for the held-handshake test instead of
// the tests. Its value is "maxCap|certFile|keyFile". The child reads commands on stdin:
// "get ID" takes that stream and echoes it; "stats" prints "stats GOROUTINES HEAPINUSE IDLE
// OPENING SHARDSUP" after a garbage collection.
const childHeldEnv = "QUICPOOL_TEST_CHILD_HELD"

func runHeldChild(spec string) {
	parts := strings.Split(spec, "|")
	maxCap, _ := strconv.Atoi(parts[0])
	cert, err := tls.LoadX509KeyPair(parts[1], parts[2])
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	server, err := quicpool.NewServer("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}},
		quicpool.WithCapacity(1, maxCap))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	fmt.Println("listening", server.Addr())
	lines := bufio.NewScanner(os.Stdin)
	for lines.Scan() {
		cmd, arg, _ := strings.Cut(lines.Text(), " ")
		switch cmd {
		case "get":
			c, err := server.OutgoingGet(arg, 5*time.Second)
			if err != nil {
				continue
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		case "stats":
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			s := server.Stats()
			fmt.Println("stats", runtime.NumGoroutine(), m.HeapInuse, s.Idle, s.Opening, s.ShardsUp)
		}
	}
	server.Close()
}

// heldChild is a server pool in a child process.
type heldChild struct {
	addr  string
	in    io.Writer
	lines chan string
}

func startHeldChild(t *testing.T, maxCap int) *heldChild {
	t.Helper()
	certFile, keyFile := writeCert(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d|%s|%s", childHeldEnv, maxCap, certFile, keyFile))
	in, err := cmd.StdinPipe()
	require.NoError(t, err)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	c := &heldChild{in: in, lines: make(chan string, 16)}
	go func() {
		r := bufio.NewScanner(out)
		for r.Scan() {
			c.lines <- r.Text()
		}
		close(c.lines)
	}()
	l := c.line(t)
	require.True(t, strings.HasPrefix(l, "listening "), "child server: %q", l)
	c.addr = strings.TrimPrefix(l, "listening ")
	return c
}

func (c *heldChild) line(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-c.lines:
		require.True(t, ok, "the child server exited")
		return l
	case <-waitCtx(t).Done():
		t.Fatal("the child server did not answer")
		return ""
	}
}

type childStats struct {
	goroutines, heap, idle, opening, shardsUp int
}

func (c *heldChild) stats(t *testing.T) childStats {
	t.Helper()
	_, err := fmt.Fprintln(c.in, "stats")
	require.NoError(t, err)
	var s childStats
	_, err = fmt.Sscanf(c.line(t), "stats %d %d %d %d %d", &s.goroutines, &s.heap, &s.idle, &s.opening, &s.shardsUp)
	require.NoError(t, err)
	return s
}

// roundTrips takes n streams of client one after another, has the child take each by ID and
// echo 1 KiB on it, and returns the median round trip.
func (c *heldChild) roundTrips(t *testing.T, client *quicpool.Pool, n int) time.Duration {
	t.Helper()
	payload, got := make([]byte, 1024), make([]byte, 1024)
	var rtts []time.Duration
	for range n {
		start := time.Now()
		id, conn, err := client.IncomingGet(5 * time.Second)
		require.NoError(t, err)
		_, err = fmt.Fprintln(c.in, "get", id)
		require.NoError(t, err)
		require.NoError(t, conn.SetDeadline(time.Now().Add(5*time.Second)))
		_, err = conn.Write(payload)
		require.NoError(t, err)
		_, err = io.ReadFull(conn, got)
		require.NoError(t, err)
		rtts = append(rtts, time.Since(start))
		conn.Close()
	}
	slices.Sort(rtts)
	return rtts[len(rtts)/2]
}

// attack dials from 127.0.0.2 with a raw quic-go client that opens every stream the server lets
// it open at once, and keeps them: with handshake set it sends each one's handshake byte (the
// server holds it until it has room); without, it sends a byte on the last stream only, which
// opens every other one on the server, where each waits for its handshake byte.
func attack(t *testing.T, addr string, handshake bool) int {
	t.Helper()
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	require.NoError(t, err)
	tr := &quic.Transport{Conn: udp}
	t.Cleanup(func() { _ = tr.Close(); _ = udp.Close() })
	server, err := net.ResolveUDPAddr("udp", addr)
	require.NoError(t, err)
	conn, err := tr.Dial(waitCtx(t), server, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{quicpool.ALPN}},
		&quic.Config{MaxIdleTimeout: 30 * time.Second, KeepAlivePeriod: time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.CloseWithError(0, "") })
	opened := 0
	var last *quic.Stream
	for ; opened < 100_000; opened++ { // bounded: the server's credit ends it long before
		s, err := conn.OpenStream()
		if err != nil {
			break // out of credit
		}
		if handshake {
			_, _ = s.Write([]byte{0})
		}
		last = s
	}
	if !handshake && last != nil {
		_, _ = last.Write([]byte{0})
	}
	return opened
}

// settled polls the child's stats until its held streams and goroutines stop changing: the
// server has worked through what the attackers sent.
func (c *heldChild) settled(t *testing.T) childStats {
	t.Helper()
	ctx := waitCtx(t)
	last := c.stats(t)
	for {
		s := c.stats(t)
		if s.opening == last.opening && s.goroutines == last.goroutines && s.idle == last.idle {
			return s
		}
		if ctx.Err() != nil {
			t.Fatalf("the server never settled after the attack: %+v, then %+v", last, s)
		}
		last = s
	}
}

// Attackers on several connections open every stream the server lets them, with and without
// handshake bytes, and keep them: the server's goroutines and heap stay within a bound linear in
// maxCap (the stream credit of all connections is at most 2 x maxCap plus 2 x 128 per
// connection; each connection reads at most 32 handshakes at a time; held streams cost no
// goroutine), and a legitimate client is not starved. Its round trip is compared with its pace
// unattacked within a wide margin only: the two are measured seconds apart on a machine other
// tests share, and a starved client would wait out timeouts of seconds.
func TestHeldHandshakesBoundedByMaxCap(t *testing.T) {
	const maxCap, attackers = 4096, 6
	child := startHeldChild(t, maxCap)
	idle := child.stats(t)

	client := startClient(t, 16, 16, child.addr)
	unattacked := child.roundTrips(t, client, 200)
	client.Close()

	opened := 0
	for i := range attackers {
		opened += attack(t, child.addr, i%2 == 0)
	}
	credit := 2*maxCap + 2*128*(attackers+1) // what every connection may have open at once
	require.LessOrEqual(t, opened, credit, "the attackers' stream credit")
	child.settled(t)

	client = startClient(t, 16, 16, child.addr)
	attacked := child.roundTrips(t, client, 200)
	s := child.stats(t)
	t.Logf("attackers opened %d streams; server: %d goroutines (%d before), heap %d MiB (%d before), idle %d, held %d, %d connections; round trip p50 %v unattacked, %v attacked",
		opened, s.goroutines, idle.goroutines, s.heap>>20, idle.heap>>20, s.idle, s.opening, s.shardsUp, unattacked, attacked)

	conns := attackers + 1
	require.Equal(t, conns, s.shardsUp)
	require.LessOrEqual(t, s.goroutines, idle.goroutines+conns*(32+8), "goroutines: a bounded number per connection")
	require.LessOrEqual(t, s.heap, idle.heap+16<<20+credit*(8<<10), "heap: bounded by the stream credit")
	require.LessOrEqual(t, s.idle, maxCap)
	require.LessOrEqual(t, attacked, 4*unattacked+5*time.Millisecond, "the legitimate client's round trip")
}

// One address that holds every connection it may, with keep-alive, keeps out no one from another
// address: the later client is admitted at once and reaches its minimum.
func TestOneAddressCannotHoldEverySlot(t *testing.T) {
	const maxCap = 256 // two connections per address, four in all
	server := startServer(t, maxCap)
	for range 2 {
		attack(t, server.Addr(), true)
	}
	waitFor(t, server, "the stranger's connections", func(s messages.Stats) bool { return s.ShardsUp == 2 })

	// A third connection from the same address is refused.
	stranger := quicpool.NewClientPool(1, 1, 100*time.Millisecond, time.Second, 10*time.Second,
		"1", "localhost", quicpool.StaticAddr(server.Addr()), quicpool.WithLocalAddr("127.0.0.2:0"))
	go stranger.ClientManager()
	t.Cleanup(stranger.Close)
	s := waitFor(t, stranger, "the stranger's third connection to be refused", func(s messages.Stats) bool { return s.Err != nil })
	require.ErrorContains(t, s.Err, "holds all the connections one address may hold (2)")
	stranger.Close()

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	client := quicpool.NewClientPool(32, 256, 100*time.Millisecond, time.Second, 10*time.Second,
		"1", "localhost", quicpool.StaticAddr(server.Addr()))
	go client.ClientManager()
	t.Cleanup(client.Close)
	require.NoError(t, client.WaitReady(ctx, 32), "the later client reaches its minimum")
	t.Logf("the later client reached its minimum %v after it started", time.Since(start).Round(time.Millisecond))
	cc, sc := tunnel(t, client, server, kib)
	cc.Close()
	sc.Close()
	// The client dials its second connection once its first is up: both get in.
	waitFor(t, server, "the later client's two connections beside the stranger's two", func(s messages.Stats) bool {
		return s.ShardsUp == 4
	})
}
