package quicpool_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool"
	"github.com/quicpool/quicpool/messages"
	"github.com/stretchr/testify/require"
)

// A server never holds more than maxCap idle streams. A client that wants more has its extra
// streams held without an ID (backpressure, not refusal) until the server's streams are taken.
func TestServerCapsIdleStreams(t *testing.T) {
	server := startServer(t, 4)
	client := quicpool.NewClientPool(16, 16, 100*time.Millisecond, 100*time.Millisecond, 10*time.Second,
		"1", "localhost", quicpool.StaticAddr(server.Addr()))
	go client.ClientManager()
	defer client.Close()
	s := waitFor(t, server, "the extra streams to be held", func(s messages.Stats) bool { return s.Idle == 4 && s.Opening >= 8 })
	require.Zero(t, s.Failed, "held, not refused")
	for range 4 {
		_, c, err := server.IncomingGet(5 * time.Second)
		require.NoError(t, err)
		c.Close()
		require.LessOrEqual(t, server.Stats().Idle, 4)
	}
	s = waitFor(t, server, "held streams to take the freed room", func(s messages.Stats) bool { return s.Idle == 4 })
	require.LessOrEqual(t, s.Idle, 4)
	require.GreaterOrEqual(t, s.Opened, uint64(8), "the held streams were admitted")
	require.LessOrEqual(t, client.Stats().Idle, 8, "the client holds only streams the server admitted")
}

// A server accepts as many connections from one address as it has shards, and twice as many in
// all: a client from a second address gets in beside the first, both are served their share,
// and a third address is refused; the first client keeps working.
func TestServerRefusesConnectionBeyondSlots(t *testing.T) {
	server := startServer(t, 2) // one shard: one connection per address, two in all
	first := startClient(t, 1, 2, server.Addr())
	second := startClient(t, 1, 2, server.Addr(), quicpool.WithLocalAddr("127.0.0.2:0"))
	third := quicpool.NewClientPool(2, 2, 100*time.Millisecond, time.Second, 10*time.Second,
		"1", "localhost", quicpool.StaticAddr(server.Addr()), quicpool.WithLocalAddr("127.0.0.3:0"))
	go third.ClientManager()
	defer third.Close()
	s := waitFor(t, third, "the third connection to be refused", func(s messages.Stats) bool { return s.Err != nil })
	require.Contains(t, s.Err.Error(), "shard slots are taken")
	require.ErrorIs(t, s.Err, quicpool.ErrPoolFull, "the refused client knows why")
	require.Zero(t, s.Idle)
	require.Equal(t, 2, server.Stats().ShardsUp)

	for _, client := range []*quicpool.Pool{first, second} {
		cc, sc := tunnel(t, client, server, kib) // any stream of this client, then the same on the server
		sc.Close()
		cc.Close()
	}
}

// A server restricted to one client IP refuses every other address during the handshake.
func TestServerRefusesOtherClientIP(t *testing.T) {
	server := quicpool.NewServerPool(4, "127.0.0.2", selfSigned(t), "127.0.0.1:0", time.Second)
	go server.ServerManager()
	defer server.Close()
	require.NoError(t, server.WaitReady(waitCtx(t), 0))
	client := quicpool.NewClientPool(1, 1, 100*time.Millisecond, time.Second, time.Second,
		"1", "localhost", quicpool.StaticAddr(server.Addr()))
	go client.ClientManager()
	defer client.Close()
	s := waitFor(t, client, "the dial to be refused", func(s messages.Stats) bool { return s.Err != nil })
	require.Contains(t, s.Err.Error(), "CONNECTION_REFUSED")
	require.Zero(t, snapshot(server).ShardsUp)
}

// A server that cannot listen says so in its log, not only to callers.
func TestServerListenFailureIsLogged(t *testing.T) {
	var log syncBuffer
	first := startServer(t, 1)
	server := quicpool.NewServerPool(1, "", selfSigned(t), first.Addr(), time.Second,
		quicpool.WithLogger(slog.New(slog.NewTextHandler(&log, nil))))
	go server.ServerManager()
	defer server.Close()
	require.Error(t, server.WaitReady(waitCtx(t), 0))
	ctx := waitCtx(t)
	for !strings.Contains(log.String(), "cannot listen") {
		select {
		case <-ctx.Done():
			t.Fatalf("no log line about the listen failure; log:\n%s", log.String())
		case <-time.After(2 * time.Millisecond):
		}
	}
	require.Contains(t, log.String(), "address already in use")
}

// syncBuffer is a bytes.Buffer safe for a logger writing from the pool's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A client that reconnects while the server still holds its old connection, dead without a
// CONNECTION_CLOSE (a crashed client, a NAT that dropped the mapping), takes its slot once the
// server has noticed that the old connection stopped answering. The old one, which might only
// have been paused, is not closed: it ends at its idle timeout (3s here).
func TestReconnectReplacesDeadConnection(t *testing.T) {
	server := startServer(t, 2, quicpool.WithKeepAlive(time.Second)) // one shard slot
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	tr := &quic.Transport{Conn: udp}
	defer tr.Close()
	dead, err := tr.Dial(waitCtx(t), mustResolve(t, server.Addr()),
		&tls.Config{InsecureSkipVerify: true, NextProtos: []string{quicpool.ALPN}}, &quic.Config{MaxIdleTimeout: time.Minute})
	require.NoError(t, err)
	s, err := dead.OpenStreamSync(waitCtx(t))
	require.NoError(t, err)
	_, err = s.Write([]byte{0})
	require.NoError(t, err)
	waitFor(t, server, "the first connection to hold the slot", func(s messages.Stats) bool { return s.ShardsUp == 1 && s.Control })
	require.NoError(t, udp.Close()) // the client is gone: no CONNECTION_CLOSE, no more answers

	waitFor(t, server, "the server to notice the silence", func(s messages.Stats) bool {
		return len(s.Conns) == 1 && s.Conns[0].Suspect
	})
	client := startClient(t, 2, 2, server.Addr())
	sc, cc := tunnel(t, server, client, kib)
	sc.Close()
	cc.Close()
	waitFor(t, server, "the dead connection to time out", func(s messages.Stats) bool { return s.ShardsUp == 1 })
}

func mustResolve(t *testing.T, addr string) *net.UDPAddr {
	t.Helper()
	udp, err := net.ResolveUDPAddr("udp", addr)
	require.NoError(t, err)
	return udp
}

// Two live clients from one address never knock each other off: the second is refused while
// the first answers, however idle it is, and the first keeps working without a restart.
func TestLiveConnectionsAreNotReplaced(t *testing.T) {
	server := startServer(t, 2) // one shard slot
	first := startClient(t, 2, 2, server.Addr())
	sc, cc := tunnel(t, server, first, kib) // in use while the second client tries
	second := quicpool.NewClientPool(2, 2, 0, 0, time.Second, "1", "", quicpool.StaticAddr(server.Addr()),
		quicpool.WithRestartPolicy(fastRetry))
	go second.ClientManager()
	defer second.Close()
	waitFor(t, second, "the second client to be refused a few times", func(s messages.Stats) bool { return s.Restarts >= 3 })
	require.ErrorContains(t, second.Stats().Err, "holds all the connections one address may hold (1)", "the server's reason, across the wire")
	// A call that times out says why; a refused connection is up for a moment before the refusal
	// arrives, and a call ending then has no cause to give: a few tries.
	var err error
	for range 20 {
		if _, err = second.OutgoingGet(quicpool.ControlID, 10*time.Millisecond); errors.Is(err, quicpool.ErrPoolFull) {
			break
		}
	}
	require.ErrorIs(t, err, quicpool.ErrTimeout)
	require.ErrorIs(t, err, quicpool.ErrPoolFull, "a call that times out says why")

	roundTrip(t, sc, cc, kib) // the stream in use survived
	sc.Close()
	cc.Close()
	require.Zero(t, first.Stats().Restarts, "the first client was never displaced")
	require.Equal(t, 1, server.Stats().ShardsUp)
}
