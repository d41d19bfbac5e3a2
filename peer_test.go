package quicpool_test

import (
	"io"
	"testing"
	"time"

	"github.com/quicpool/quicpool/messages"
	"github.com/stretchr/testify/require"
)

// The server takes and closes streams the client never takes. The client notices that the peer
// stopped reading them and refills, instead of holding dead streams as idle forever.
func TestPeerClosedStreamsAreReplaced(t *testing.T) {
	const maxCap = 8
	server := startServer(t, maxCap)
	startClient(t, maxCap, maxCap, server.Addr())
	for i := range 4 * maxCap {
		_, c, err := server.IncomingGet(5 * time.Second)
		require.NoError(t, err, "take %d", i)
		c.Close()
	}
}

// A stream the peer wrote to and closed before this side took it still delivers that data to
// the caller who asks for its ID.
func TestDataSurvivesEarlyPeerClose(t *testing.T) {
	server := startServer(t, 4)
	client := startClient(t, 4, 4, server.Addr())
	id, sc, err := server.IncomingGet(5 * time.Second)
	require.NoError(t, err)
	_, err = sc.Write([]byte("bye"))
	require.NoError(t, err)
	require.NoError(t, sc.Close())
	waitFor(t, client, "the client to see the peer's close", func(s messages.Stats) bool { return s.PeerClosed == 1 })

	cc, err := client.OutgoingGet(id, 5*time.Second)
	require.NoError(t, err)
	got, err := io.ReadAll(cc)
	require.NoError(t, err)
	require.Equal(t, "bye", string(got))
	cc.Close()
}

// A flush on one side discards the same streams on the other side (within its 250ms check).
func TestFlushReachesThePeer(t *testing.T) {
	server := startServer(t, 8)
	client := startClient(t, 8, 8, server.Addr())
	require.NoError(t, server.WaitReady(waitCtx(t), 8))
	before := snapshot(client).Discarded

	server.Flush()
	waitFor(t, client, "the client to discard the flushed streams", func(s messages.Stats) bool {
		return s.Discarded >= before+8
	})
	// And the pools refill.
	require.NoError(t, server.WaitReady(waitCtx(t), 8))
}
