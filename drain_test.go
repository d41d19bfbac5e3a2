package quicpool_test

import (
	"bytes"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool"
	"github.com/quicpool/quicpool/messages"
	"github.com/stretchr/testify/require"
)

// switchOver starts a server and a client (one connection each way) behind a relay, takes a
// stream pair and moves a KiB both ways, then silences the connection (its datagrams are dropped
// both ways) and waits until a standby took over: the client drains the silent connection, and
// the server gave its slot to the standby.
func switchOver(t *testing.T, opts ...quicpool.Option) (server, client *quicpool.Pool, relay *relay, sc, cc net.Conn) {
	t.Helper()
	server = startServer(t, 8, opts...)
	relay = newRelay(t, server.Addr())
	client = startClient(t, 4, 8, relay.Addr(), opts...)
	sc, cc = tunnel(t, server, client, kib)
	t.Cleanup(func() { sc.Close(); cc.Close() })

	restarts := snapshot(client).Restarts
	relay.BlackholeSeen(true)
	waitFor(t, client, "a standby to take over", func(s messages.Stats) bool { return s.Restarts > restarts && s.ShardsUp == 1 })
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if err = tunnelOp(server, client, time.Second); err == nil {
			break
		}
	}
	require.NoError(t, err, "the standby serves")
	return server, client, relay, sc, cc
}

// A connection that went silent with a stream in use, and that a standby took over from, keeps
// the stream: when the path comes back, the stream carries on as if nothing happened. The client
// closes the connection once the stream is done, and both sides account for every stream (the
// silent connection's idle streams are discarded, not lost).
func TestSwitchOverKeepsStreamsInUse(t *testing.T) {
	server, client, relay, sc, cc := switchOver(t)
	require.Equal(t, 1, snapshot(client).Draining, "the silent connection drains")
	require.Equal(t, 2, snapshot(server).ShardsUp, "the server keeps it beside the standby")

	relay.BlackholeSeen(false)
	payload := bytes.Repeat([]byte("drain"), 50_000)
	deadline := time.Now().Add(20 * time.Second)
	require.NoError(t, sc.SetDeadline(deadline))
	require.NoError(t, cc.SetDeadline(deadline))
	roundTrip(t, cc, sc, payload)

	require.NoError(t, cc.Close())
	require.NoError(t, sc.Close())
	s := waitFor(t, client, "the drained connection to close", func(s messages.Stats) bool { return s.Draining == 0 })
	require.Zero(t, s.Lost, "the drained connection's idle streams are discarded, not lost")
	require.NotZero(t, s.Discarded)
	requireAccounted(t, s, "after the drain")
	waitFor(t, server, "the server to see it closed", func(s messages.Stats) bool { return s.ShardsUp == 1 })
	requireAccounted(t, snapshot(server), "after the drain")
	require.NoError(t, tunnelOp(server, client, 5*time.Second), "the pool serves after the drain")
}

// A draining connection whose peer never answers again ends at its idle timeout (three
// keep-alive periods), and its streams fail then.
func TestDrainingConnectionEndsAtItsIdleTimeout(t *testing.T) {
	_, client, _, _, cc := switchOver(t, quicpool.WithKeepAlive(time.Second))
	require.NoError(t, cc.SetReadDeadline(time.Now().Add(20*time.Second)))
	_, err := cc.Read(make([]byte, 1))
	var idle *quic.IdleTimeoutError
	require.ErrorAs(t, err, &idle, "the stream ends with its connection, not at its deadline")
	waitFor(t, client, "the dead connection to be forgotten", func(s messages.Stats) bool { return s.Draining == 0 })
}

// Closing a pool closes its draining connections: nothing is left behind.
func TestCloseEndsDrainingConnections(t *testing.T) {
	baseline := runtime.NumGoroutine()
	server, client, relay, sc, cc := switchOver(t)
	client.Close()
	_, err := io.ReadAll(cc)
	require.Error(t, err, "the stream in use ends with its pool")
	server.Close()
	require.NoError(t, sc.Close())
	relay.Close()
	settleGoroutines(t, baseline)
}
