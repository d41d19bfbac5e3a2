package quicpool_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool"
	"github.com/quicpool/quicpool/messages"
	"github.com/stretchr/testify/require"
)

// flooder is a raw quic-go client that opens streams, sends each its handshake byte, and keeps
// every stream it gets an ID for, as many as the server lets it: it never takes one.
type flooder struct {
	conn *quic.Conn
	ids  atomic.Int64
}

func startFlooder(t *testing.T, addr string, streams int) *flooder {
	t.Helper()
	conn, err := quic.DialAddr(waitCtx(t), addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{quicpool.ALPN}},
		&quic.Config{MaxIdleTimeout: 30 * time.Second, KeepAlivePeriod: time.Second})
	require.NoError(t, err)
	f := &flooder{conn: conn}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); conn.CloseWithError(0, ""); wg.Wait() })
	wg.Go(func() {
		for range streams {
			s, err := conn.OpenStreamSync(ctx)
			if err != nil {
				return
			}
			wg.Go(func() {
				_ = s.SetDeadline(time.Now().Add(30 * time.Second))
				if _, err := s.Write([]byte{0}); err != nil {
					return
				}
				if _, err := io.ReadFull(s, make([]byte, 4)); err == nil {
					f.ids.Add(1)
				}
			})
		}
	})
	return f
}

// owns reports whether a server-side stream belongs to the flooder's connection (the flooder's
// socket is bound to the wildcard address: compare ports).
func (f *flooder) owns(c net.Conn) bool {
	return c.RemoteAddr().(*net.UDPAddr).Port == f.conn.LocalAddr().(*net.UDPAddr).Port
}

// A flood that arrives first does not lock out a client that comes later: the server takes back
// the flooder's idle streams beyond its share, the later client reaches its capacity at once,
// the server never holds more than maxCap, and Accept hands out the later client's streams in
// turn with the flooder's.
func TestFloodFirstDoesNotLockOutALaterClient(t *testing.T) {
	const maxCap = 256 // two connection slots
	server := startServer(t, maxCap)
	flood := startFlooder(t, server.Addr(), 2*maxCap)
	waitFor(t, server, "the flooder to fill the pool", func(s messages.Stats) bool { return s.Idle == maxCap })

	start := time.Now()
	client := startClient(t, 16, 16, server.Addr())
	s := waitFor(t, server, "the later client's streams", func(s messages.Stats) bool {
		return len(s.Conns) == 2 && s.Conns[0].Idle+s.Conns[1].Idle == s.Idle && min(s.Conns[0].Idle, s.Conns[1].Idle) >= 16
	})
	t.Logf("later client served %v after it started; flooder got %d IDs", time.Since(start).Round(time.Millisecond), flood.ids.Load())
	require.Less(t, time.Since(start), 3*time.Second)
	require.LessOrEqual(t, s.Idle, maxCap, "the server never holds more than maxCap")
	require.NoError(t, client.WaitReady(waitCtx(t), 16))

	theirs := 0
	for range 40 {
		_, c, err := server.IncomingGet(5 * time.Second)
		require.NoError(t, err)
		if !flood.owns(c) {
			theirs++
		}
		c.Close()
	}
	t.Logf("%d of 40 streams taken were the later client's", theirs)
	require.GreaterOrEqual(t, theirs, 10, "Accept takes the connections in turn")
}

// Attackers arriving one second apart while a client works: the client keeps serving at a pace
// (its own streams, taken by ID on the server), and no connection holds more than its share of
// the pool once all are up.
func TestLaterArrivalsDoNotStarveAClient(t *testing.T) {
	const maxCap = 512 // four connection slots
	server := startServer(t, maxCap)
	client := startClient(t, 16, 16, server.Addr())
	var done atomic.Int64
	failed := make(chan error, 1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	wg.Go(func() { // the client's work, from its side: it takes a stream, the server takes it by ID
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := tunnelOp(client, server, 2*time.Second); err != nil {
				failed <- err
				return
			}
			done.Add(1)
		}
	})
	for range 3 {
		select {
		case <-time.After(time.Second): // the scenario: one attacker a second
		case err := <-failed:
			t.Fatalf("the client stopped serving: %v", err)
		}
		startFlooder(t, server.Addr(), maxCap)
	}
	before := done.Load()
	select {
	case <-time.After(2 * time.Second): // the pace under attack, over two seconds
	case err := <-failed:
		t.Fatalf("the client stopped serving: %v", err)
	}
	t.Logf("%d ops in the 2s after the third attacker", done.Load()-before)
	require.GreaterOrEqual(t, done.Load()-before, int64(20), "the client keeps serving")
	s := server.Stats()
	require.Len(t, s.Conns, 4)
	for _, c := range s.Conns {
		require.LessOrEqual(t, c.Idle, maxCap/4, "no connection holds more than its share: %+v", s.Conns)
	}
}

// Accept takes the client addresses in turn, however many connections each holds: a client with
// two connections gets no more of what the application takes than a client with one (taken
// connection by connection, it would get two thirds).
func TestAcceptTakesClientAddressesInTurn(t *testing.T) {
	server := startServer(t, 256) // two connections per client address
	// From 127.0.0.1 two connections holding 128 streams between them, from 127.0.0.2 one of 64.
	startClient(t, 128, 256, server.Addr(), quicpool.WithLocalAddr("127.0.0.1:0"))
	startClient(t, 64, 128, server.Addr(), quicpool.WithLocalAddr("127.0.0.2:0"))
	waitFor(t, server, "three connections, each with 32 idle streams to take", func(s messages.Stats) bool {
		if len(s.Conns) != 3 {
			return false
		}
		for _, c := range s.Conns {
			if c.Idle < 32 {
				return false
			}
		}
		return true
	})
	taken := map[string]int{}
	for range 60 {
		_, c, err := server.IncomingGet(5 * time.Second)
		require.NoError(t, err)
		host, _, err := net.SplitHostPort(c.RemoteAddr().String())
		require.NoError(t, err)
		taken[host]++
		require.NoError(t, c.Close())
	}
	require.Equal(t, map[string]int{"127.0.0.1": 30, "127.0.0.2": 30}, taken)
}
