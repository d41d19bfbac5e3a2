package quicpool_test

import (
	"cmp"
	"context"
	"encoding/hex"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool"
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

// A server answers handshakes in its own order, and may hold a stream without an ID while it has
// no room: a client's stream that got its ID is ready at once, whatever the streams opened with it
// are waiting for.
func TestStreamsAnsweredOutOfOrderAreReadyAtOnce(t *testing.T) {
	addr, pending := holdingServer(t)
	client := quicpool.NewClientPool(4, 4, time.Hour, time.Hour, 10*time.Second,
		"1", "localhost", quicpool.StaticAddr(addr))
	go client.ClientManager()
	t.Cleanup(client.Close)
	var streams []*quic.Stream
	for range 4 {
		select {
		case st := <-pending:
			streams = append(streams, st)
		case <-waitCtx(t).Done():
			t.Fatalf("the client opened %d streams, want 4", len(streams))
		}
	}
	slices.SortFunc(streams, func(a, b *quic.Stream) int { return cmp.Compare(a.StreamID(), b.StreamID()) })
	_, err := streams[0].Write([]byte{0x0a, 0x0b}) // the first one opened is held, half answered
	require.NoError(t, err)
	for i := len(streams) - 1; i > 0; i-- { // the others are answered, last first
		_, err := streams[i].Write([]byte{0, 0, 0, byte(i)})
		require.NoError(t, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // half the handshake timeout
	defer cancel()
	require.NoError(t, client.WaitReady(ctx, 3), "the three answered streams are idle before the held one times out")
	_, err = streams[0].Write([]byte{0x0c, 0x0d}) // the rest of the held one's ID
	require.NoError(t, err)
	c, err := client.OutgoingGet("0a0b0c0d", 5*time.Second)
	require.NoError(t, err, "the held stream is idle under the ID its two halves make")
	c.Close()
	for _, st := range streams {
		st.CancelRead(0)
		st.CancelWrite(0)
	}
}

// A stream can reach the server before its handshake byte: a client that opens streams 0 and 4
// and writes only on 4 makes the server accept 0 first, empty. The server waits for 0's byte
// without holding up 4, and answers 0 when its byte comes.
func TestHandshakeByteAfterItsStream(t *testing.T) {
	server := startServer(t, 4)
	conn := rawClient(t, server.Addr())
	first, err := conn.OpenStream()
	require.NoError(t, err)
	second, err := conn.OpenStream()
	require.NoError(t, err)
	readID := func(st *quic.Stream) string {
		t.Helper()
		_, err := st.Write([]byte{0})
		require.NoError(t, err)
		require.NoError(t, st.SetReadDeadline(time.Now().Add(5*time.Second)))
		var id [4]byte
		_, err = io.ReadFull(st, id[:])
		require.NoError(t, err)
		return hex.EncodeToString(id[:])
	}
	secondID := readID(second) // answered while the first stream, accepted before it, has no byte
	firstID := readID(first)
	require.NotEqual(t, firstID, secondID)
	s := waitFor(t, server, "both streams idle (the first ID is the control stream's)", func(s messages.Stats) bool {
		return s.Control && s.Idle == 1
	})
	require.Zero(t, s.Failed, "neither handshake failed")
}
