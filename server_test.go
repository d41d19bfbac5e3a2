package quicpool_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quicpool/quicpool"
	"github.com/quicpool/quicpool/messages"
	"github.com/stretchr/testify/require"
)

// A server never holds more than maxCap idle streams: a client that wants more has the extra
// streams refused.
func TestServerCapsIdleStreams(t *testing.T) {
	server := startServer(t, 4)
	client := quicpool.NewClientPool(16, 16, 100*time.Millisecond, 100*time.Millisecond, 10*time.Second,
		"1", "localhost", quicpool.StaticAddr(server.Addr()))
	go client.ClientManager()
	defer client.Close()
	waitFor(t, client, "the server to refuse streams beyond its cap", func(s messages.Snapshot) bool { return s.Failed >= 12 })
	s := snapshot(server)
	require.LessOrEqual(t, s.Idle, 4)
	require.GreaterOrEqual(t, s.Failed, uint64(12), "the server counted the refused streams")
	c := snapshot(client)
	require.LessOrEqual(t, c.Idle, 4, "the client keeps only streams the server accepted")
	require.ErrorIs(t, c.LastErr, quicpool.ErrBadHandshake)
}

// A server accepts as many client connections as it has shards and refuses the next one; the
// first client keeps working.
func TestServerRefusesConnectionBeyondShards(t *testing.T) {
	server := startServer(t, 2) // one shard
	first := startClient(t, 2, 2, server.Addr())
	second := quicpool.NewClientPool(2, 2, 100*time.Millisecond, time.Second, 10*time.Second,
		"1", "localhost", quicpool.StaticAddr(server.Addr()))
	go second.ClientManager()
	defer second.Close()
	s := waitFor(t, second, "the second connection to be refused", func(s messages.Snapshot) bool { return s.LastErr != nil })
	require.Contains(t, s.LastErr.Error(), "shard slots are taken")
	require.Zero(t, s.Idle)

	sc, cc := tunnel(t, server, first, kib)
	sc.Close()
	cc.Close()
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
	s := waitFor(t, client, "the dial to be refused", func(s messages.Snapshot) bool { return s.LastErr != nil })
	require.Contains(t, s.LastErr.Error(), "CONNECTION_REFUSED")
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
