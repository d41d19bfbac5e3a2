package quicpool_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var kib = bytes.Repeat([]byte("quicpool"), 128)

func TestRoundTrip(t *testing.T) {
	server := startServer(t, 8)
	client := startClient(t, 4, 8, server.Addr())
	require.NoError(t, server.WaitReady(waitCtx(t), 4))

	sc, cc := tunnel(t, server, client, kib)
	require.NoError(t, sc.Close())
	require.NoError(t, cc.Close())

	// The returned conns are *StreamConn with their connection's addresses and TLS state.
	scs, ccs := sc.(*quicpool.StreamConn), cc.(*quicpool.StreamConn)
	assert.Equal(t, scs.ID(), ccs.ID())
	assert.Equal(t, sc.LocalAddr().String(), cc.RemoteAddr().String())
	assert.Equal(t, port(t, sc.RemoteAddr()), port(t, cc.LocalAddr()), "the client's socket is unbound: compare ports")
	assert.Equal(t, quicpool.ALPN, ccs.ConnectionState().NegotiatedProtocol)
	assert.NotEmpty(t, ccs.ConnectionState().PeerCertificates, "the client sees the server's certificate")
}

// The first ID a server pool issues is the control stream 00000000, and both sides can take it
// by ID. IncomingGet never hands it out.
func TestControlStream(t *testing.T) {
	server := startServer(t, 4)
	client := startClient(t, 4, 4, server.Addr())
	require.NoError(t, server.WaitReady(waitCtx(t), 4))

	seen := map[string]bool{}
	for range 3 {
		id, c, err := server.IncomingGet(5 * time.Second)
		require.NoError(t, err)
		require.NotEqual(t, quicpool.ControlID, id, "IncomingGet must not hand out the control stream")
		seen[id] = true
		c.Close()
	}
	require.Len(t, seen, 3)

	sc, err := server.OutgoingGet(quicpool.ControlID, 5*time.Second)
	require.NoError(t, err)
	cc, err := client.OutgoingGet(quicpool.ControlID, 5*time.Second)
	require.NoError(t, err)
	roundTrip(t, sc, cc, kib)

	// Exactly once per pool: the refills get random IDs, and a second ask finds nothing.
	_, err = server.OutgoingGet(quicpool.ControlID, 0)
	require.ErrorIs(t, err, quicpool.ErrTimeout)
}

// maxCap 300 gives 3 shards on both sides, and every shard carries traffic.
func TestMultiShard(t *testing.T) {
	server := startServer(t, 300)
	client := startClient(t, 300, 300, server.Addr())
	require.NoError(t, server.WaitReady(waitCtx(t), 300))
	require.Equal(t, 3, server.ShardCount())
	require.Equal(t, 3, client.ShardCount())

	serverSide, clientSide := map[string]int{}, map[int]int{}
	var conns []net.Conn
	for range 300 {
		sc, cc := tunnel(t, server, client, []byte("ping"))
		serverSide[sc.RemoteAddr().String()]++
		clientSide[port(t, cc.LocalAddr())]++
		conns = append(conns, sc, cc)
	}
	for _, c := range conns {
		c.Close()
	}
	require.Len(t, serverSide, 3, "streams came from 3 client connections: %v", serverSide)
	require.Len(t, clientSide, 3, "streams used 3 client sockets: %v", clientSide)
	for addr, n := range serverSide {
		assert.Greater(t, n, 50, "shard %s carried %d of 300 tunnels", addr, n)
	}
}

// An idle pool costs few goroutines of its own per connection, besides quic-go's: on a server,
// the connection's accept loop and its watcher (death, closing, liveness); on a client, its
// watcher. Each pool's coordinator adds one, and the server's listener one. Opens and handshakes
// run on workers that end when there is nothing left to do.
func TestIdlePoolGoroutinesPerConnection(t *testing.T) {
	const shards = 3
	server := startServer(t, shards*128)
	client := startClient(t, shards*128, shards*128, server.Addr())
	require.NoError(t, server.WaitReady(waitCtx(t), shards*128))
	require.NoError(t, client.WaitReady(waitCtx(t), shards*128))
	require.Equal(t, shards, server.ShardCount())
	require.Equal(t, shards, client.ShardCount())

	want := 2 + 1 + 2*shards + 1*shards
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, dump := poolGoroutines()
		if got <= want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines of the pools' actors for %d connections, want at most %d:\n%s", got, shards, want, dump)
		}
		time.Sleep(10 * time.Millisecond) // the workers of the fill end on their own; the loop waits on the count
	}
}

// poolGoroutines counts the goroutines running code of package actors, with their stacks.
func poolGoroutines() (int, string) {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var n int
	var dump strings.Builder
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "github.com/quicpool/quicpool/actors.") {
			n++
			dump.WriteString(g + "\n\n")
		}
	}
	return n, dump.String()
}

// A caller waiting for an ID is woken when the stream arrives, long before its timeout.
func TestOutgoingGetWaitsForArrival(t *testing.T) {
	server := startServer(t, 4)
	client := quicpool.NewClientPool(1, 1, time.Second, time.Second, 10*time.Second, "1", "localhost",
		quicpool.StaticAddr(server.Addr()))
	t.Cleanup(client.Close)

	got := make(chan error, 1)
	start := time.Now()
	go func() {
		c, err := client.OutgoingGet(quicpool.ControlID, time.Minute)
		if err == nil {
			c.Close()
		}
		got <- err
	}()
	go client.ClientManager() // the control stream is opened only now
	select {
	case err := <-got:
		require.NoError(t, err)
	case <-waitCtx(t).Done():
		t.Fatal("OutgoingGet did not return when its stream arrived")
	}
	// Not a latency target (that lives in the benchmarks), just proof that the wait ended on
	// arrival and not on the one-minute timeout.
	require.Less(t, time.Since(start), 30*time.Second)
}

func TestTimeouts(t *testing.T) {
	server := startServer(t, 4) // no client: nothing ever arrives
	for _, timeout := range []time.Duration{0, 50 * time.Millisecond} {
		start := time.Now()
		_, _, err := server.IncomingGet(timeout)
		elapsed := time.Since(start)
		require.ErrorIs(t, err, quicpool.ErrTimeout)
		var ne net.Error
		require.ErrorAs(t, err, &ne)
		require.True(t, ne.Timeout(), "a timeout is a net.Error with Timeout() true")
		require.Less(t, elapsed, timeout+2*time.Second, "timeout %v returned after %v", timeout, elapsed)
		require.Equal(t, "IncomingGet: "+quicpool.ErrTimeout.Error(), err.Error(), "the NodePass API speaks of timeouts, not contexts")

		_, err = server.OutgoingGet("0badcafe", timeout)
		require.ErrorIs(t, err, quicpool.ErrTimeout)
	}
}

func TestInvalidID(t *testing.T) {
	server := startServer(t, 1)
	for _, id := range []string{"", "non-existent-id", "0000000", "000000000", "ABCDEF01", "0000000g"} {
		_, err := server.OutgoingGet(id, time.Minute)
		require.ErrorIs(t, err, quicpool.ErrInvalidID, "id %q", id)
	}
	// An ID may come from the peer: the error shows one that is not letters and digits quoted.
	_, err := server.OutgoingGet("1a2b\n[ERROR] forged log line", time.Minute)
	require.ErrorContains(t, err, `OutgoingGet("1a2b\n[ERROR] forged log line"): `)
	_, err = server.OutgoingGet("zz", time.Minute)
	require.ErrorContains(t, err, "OutgoingGet(zz): ")
}

// Callers that close without reading to EOF must not leak stream credit: 10 x maxCap cycles
// complete without a stall.
func TestCloseWithoutDrainingDoesNotStall(t *testing.T) {
	const maxCap = 8
	server := startServer(t, maxCap)
	client := startClient(t, maxCap, maxCap, server.Addr())
	for i := range 10 * maxCap {
		id, sc, err := server.IncomingGet(5 * time.Second)
		require.NoError(t, err, "cycle %d", i)
		cc, err := client.OutgoingGet(id, 5*time.Second)
		require.NoError(t, err, "cycle %d", i)
		// Both sides write and close; neither reads what the other sent.
		_, err = sc.Write(kib)
		require.NoError(t, err)
		_, err = cc.Write(kib)
		require.NoError(t, err)
		require.NoError(t, sc.Close())
		require.NoError(t, cc.Close())
	}
}

// Flush and Close while many callers are waiting for or taking streams: nothing panics or races,
// every caller ends with a stream or a documented error, and Close returns.
func TestFlushAndCloseUnderLoad(t *testing.T) {
	baseline := runtime.NumGoroutine()
	server := quicpool.NewServerPool(32, "", selfSigned(t), "127.0.0.1:0", 10*time.Second)
	go server.ServerManager()
	require.NoError(t, server.WaitReady(waitCtx(t), 0))
	client := quicpool.NewClientPool(16, 32, 100*time.Millisecond, time.Second, 10*time.Second, "1", "localhost",
		quicpool.StaticAddr(server.Addr()))
	go client.ClientManager()
	require.NoError(t, server.WaitReady(waitCtx(t), 16))

	var wg sync.WaitGroup
	stop := make(chan struct{})
	ops := make(chan int, 16)
	for range 16 {
		wg.Go(func() {
			n := 0
			defer func() { ops <- n }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				id, sc, err := server.IncomingGet(time.Second)
				if err != nil {
					assertPoolError(t, err)
					if errors.Is(err, quicpool.ErrClosed) {
						return
					}
					continue
				}
				cc, err := client.OutgoingGet(id, time.Second)
				if err != nil {
					assertPoolError(t, err)
					sc.Close()
					continue
				}
				n++
				sc.Close()
				cc.Close()
			}
		})
	}
	for range 5 {
		server.Flush()
		client.Flush()
		require.NoError(t, server.WaitReady(waitCtx(t), 1))
	}
	closed := make(chan struct{})
	go func() {
		server.Close()
		client.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-waitCtx(t).Done():
		t.Fatal("Close did not return")
	}
	close(stop)
	wg.Wait()
	close(ops)
	total := 0
	for n := range ops {
		total += n
	}
	require.Positive(t, total, "the callers took streams while the pools were flushed")
	_, _, err := server.IncomingGet(time.Second)
	require.ErrorIs(t, err, quicpool.ErrClosed)
	settleGoroutines(t, baseline)
}

func assertPoolError(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, quicpool.ErrClosed) && !errors.Is(err, quicpool.ErrTimeout) && !errors.Is(err, quicpool.ErrStreamGone) {
		t.Errorf("unexpected error: %v", err)
	}
}

// Close is idempotent, safe from many goroutines at once, and leaves no goroutine behind,
// whether or not the pool was ever started.
func TestCloseLeavesNothingBehind(t *testing.T) {
	baseline := runtime.NumGoroutine()
	never := quicpool.NewClientPool(1, 1, 0, 0, 0, "0", "", quicpool.StaticAddr("127.0.0.1:1"))
	never.Close()
	never.Close()

	server := quicpool.NewServerPool(16, "", selfSigned(t), "127.0.0.1:0", time.Second)
	go server.ServerManager()
	require.NoError(t, server.WaitReady(waitCtx(t), 0))
	client := quicpool.NewClientPool(8, 16, 0, 0, time.Second, "1", "localhost", quicpool.StaticAddr(server.Addr()))
	go client.ClientManager()
	require.NoError(t, client.WaitReady(waitCtx(t), 8))
	sc, cc := tunnel(t, server, client, kib)
	_ = sc // left open: Close must take it down with its connection

	var wg sync.WaitGroup
	for range 4 {
		wg.Go(client.Close)
		wg.Go(server.Close)
	}
	wg.Wait()
	_, err := cc.Read(make([]byte, 1))
	require.Error(t, err, "a stream in use dies with its pool")
	require.False(t, client.Ready())
	require.Zero(t, client.Active())
	settleGoroutines(t, baseline)
}

// A server pool that cannot listen reports why to the next caller.
func TestServerListenFailure(t *testing.T) {
	busy, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer busy.Close()

	server := quicpool.NewServerPool(4, "", selfSigned(t), busy.LocalAddr().String(), time.Second)
	go server.ServerManager()
	defer server.Close()
	err = server.WaitReady(waitCtx(t), 0)
	require.Error(t, err)
	require.ErrorContains(t, err, "address already in use")
	_, _, err = server.IncomingGet(time.Minute)
	require.ErrorContains(t, err, "address already in use", "the listen error, not a timeout")
	require.False(t, errors.Is(err, quicpool.ErrTimeout))
	require.ErrorIs(t, err, quicpool.ErrUnavailable, "a pool that cannot serve")
	require.ErrorIs(t, err, syscall.EADDRINUSE, "the cause stays reachable")
	require.NotContains(t, err.Error(), "no connection to the server", "a server has none to speak of")
}

// Invalid arguments never panic: every call reports ErrInvalidConfig.
func TestInvalidConfig(t *testing.T) {
	pools := map[string]*quicpool.Pool{
		"unknown TLS code": quicpool.NewClientPool(1, 1, 0, 0, 0, "3", "", quicpool.StaticAddr("127.0.0.1:1")),
		"nil resolver":     quicpool.NewClientPool(1, 1, 0, 0, 0, "0", "", nil),
		"no certificate":   quicpool.NewServerPool(1, "", nil, "127.0.0.1:0", 0),
		"empty listen":     quicpool.NewServerPool(1, "", selfSigned(t), "", 0),
		"bad client IP":    quicpool.NewServerPool(1, "not-an-ip", selfSigned(t), "127.0.0.1:0", 0),
	}
	for name, p := range pools {
		t.Run(name, func(t *testing.T) {
			defer p.Close()
			go p.ClientManager()
			_, _, err := p.IncomingGet(time.Minute)
			require.ErrorIs(t, err, quicpool.ErrInvalidConfig)
			require.ErrorIs(t, p.WaitReady(waitCtx(t), 1), quicpool.ErrInvalidConfig)
		})
	}
}

// When the server goes away, the client's idle streams are purged at once and never handed out;
// asking for one of their IDs fails with ErrStreamGone.
func TestDeadConnectionIsPurged(t *testing.T) {
	server := startServer(t, 4)
	client := startClient(t, 4, 4, server.Addr())
	require.NoError(t, server.WaitReady(waitCtx(t), 4))
	id, sc, err := server.IncomingGet(time.Second)
	require.NoError(t, err)
	sc.Close()

	server.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for client.Active() > 0 { // purged on CONNECTION_CLOSE, not on an idle timeout
		select {
		case <-ctx.Done():
			t.Fatalf("client still holds %d idle streams of a dead connection", client.Active())
		case <-time.After(5 * time.Millisecond):
		}
	}
	_, err = client.OutgoingGet(id, time.Minute)
	require.ErrorIs(t, err, quicpool.ErrStreamGone)
}

// Capacity, interval and shard accessors report the configuration and the error counter works.
func TestAccessors(t *testing.T) {
	server := startServer(t, 10)
	client := quicpool.NewClientPool(3, 10, 200*time.Millisecond, 500*time.Millisecond, time.Second,
		"1", "localhost", quicpool.StaticAddr(server.Addr()))
	defer client.Close()
	require.False(t, client.Ready(), "not ready before the manager runs")
	require.Equal(t, 3, client.Capacity())
	require.Equal(t, 200*time.Millisecond, client.Interval())
	require.Equal(t, 1, client.ShardCount())
	require.Equal(t, 10, server.Capacity())
	require.Zero(t, server.Interval())

	go client.ClientManager()
	require.NoError(t, client.WaitReady(waitCtx(t), 3))
	require.True(t, client.Ready())
	require.GreaterOrEqual(t, client.Active(), 3)

	for range 3 {
		client.AddError()
	}
	require.Equal(t, 3, client.ErrorCount())
	client.ResetError()
	require.Zero(t, client.ErrorCount())
}

// The control stream does not take a slot of capacity: a pool of one stream that never asks for
// it still serves ordinary streams.
func TestControlStreamTakesNoSlot(t *testing.T) {
	server := startServer(t, 1)
	client := startClient(t, 1, 1, server.Addr())
	require.NoError(t, server.WaitReady(waitCtx(t), 1))
	for range 5 {
		sc, cc := tunnel(t, server, client, []byte("x"))
		sc.Close()
		cc.Close()
	}
	c, err := client.OutgoingGet(quicpool.ControlID, time.Second)
	require.NoError(t, err, "the control stream is still there for whoever asks by ID")
	c.Close()
}

// Close unblocks a Write that is blocked on flow control (the peer never reads), as net.Conn
// promises. The Write fails as one after Close does, with quic.ErrStreamClosed, not with a
// timeout that code retrying on net.Error.Timeout would take for a deadline of its own; so it
// does when the stream had been read to its end before.
func TestCloseUnblocksWrite(t *testing.T) {
	for _, readToEnd := range []bool{false, true} {
		t.Run(fmt.Sprintf("read to its end first: %v", readToEnd), func(t *testing.T) {
			server := startServer(t, 2)
			client := startClient(t, 1, 2, server.Addr())
			sc, cc := tunnel(t, server, client, []byte("x"))
			defer sc.Close()
			if readToEnd {
				require.NoError(t, sc.(*quicpool.StreamConn).CloseWrite())
				_, err := io.ReadAll(cc)
				require.NoError(t, err)
			}
			written := blockedWrite(t, cc, sc)
			require.NoError(t, cc.Close())
			select {
			case err := <-written:
				require.ErrorIs(t, err, quic.ErrStreamClosed, "the blocked Write fails as the stream is closed")
				var ne net.Error
				require.False(t, errors.As(err, &ne) && ne.Timeout(), "the blocked Write is no timeout: %v", err)
				_, err = cc.Write([]byte("x"))
				require.ErrorIs(t, err, quic.ErrStreamClosed, "so does a Write after Close")
			case <-waitCtx(t).Done():
				t.Fatal("Close did not unblock the Write")
			}
		})
	}
}

// A Write that reaches a deadline of its own fails at it, as a timeout, even while another
// goroutine is blocked reading the same stream (a proxy's other direction).
func TestWriteDeadlineBesideABlockedRead(t *testing.T) {
	server := startServer(t, 2)
	client := startClient(t, 1, 2, server.Addr())
	sc, cc := tunnel(t, server, client, []byte("x"))
	defer sc.Close()
	defer cc.Close()
	go func() { _, _ = cc.Read(make([]byte, 1)) }() // the peer sends nothing: blocked until Close
	require.NoError(t, cc.SetWriteDeadline(time.Now().Add(100*time.Millisecond)))
	written := make(chan error, 1)
	go func() {
		_, err := cc.Write(make([]byte, 64<<20)) // far beyond the peer's window: it never completes
		written <- err
	}()
	select {
	case err := <-written:
		var ne net.Error
		require.True(t, errors.As(err, &ne) && ne.Timeout(), "the Write times out: %v", err)
	case <-waitCtx(t).Done():
		t.Fatal("the Write outlived its deadline")
	}
}

// blockedWrite starts a Write on w far beyond the peer's flow-control window and returns once
// the peer has its first byte: the writer is then inside quic-go's write loop, and stays there,
// since the peer reads nothing more. The Write's error comes on the channel.
func blockedWrite(t *testing.T, w, peer net.Conn) <-chan error {
	t.Helper()
	written := make(chan error, 1)
	go func() {
		_, err := w.Write(make([]byte, 64<<20))
		written <- err
	}()
	_, err := io.ReadFull(peer, make([]byte, 1))
	require.NoError(t, err)
	return written
}
