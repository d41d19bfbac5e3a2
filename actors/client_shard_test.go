package actors

import (
	"context"
	"io"
	"os"
	"testing"
	"time"

	"github.com/quicpool/quicpool/internal/wire"
	"github.com/stretchr/testify/require"
)

// A stream's handshake byte goes out even when its connection's flow-control window is spent by
// transfers on the other streams: quic-go's TryWriteAll refuses the byte then, and
// startHandshake queues it with Write; the peer gets it once it reads on and returns credit.
func TestHandshakeByteWaitsForConnectionCredit(t *testing.T) {
	lb := quicStreams(t, 2)
	for _, s := range lb.streams { // far beyond the connection's window; the peer reads nothing yet
		go func() { _, _ = s.Write(make([]byte, 4<<20)) }()
	}
	probe, err := lb.conn.OpenStream()
	require.NoError(t, err)
	spent := time.Now().Add(bound)
	for probe.TryWriteAll([]byte{1}) == nil { // each byte it queues takes one of the window
		require.True(t, time.Now().Before(spent), "the connection's window was never spent")
		time.Sleep(time.Millisecond)
	}

	rt := newRuntime(testConfig(t, true))
	s := &clientShard{shard: shard{rt: rt}}
	fresh, err := lb.conn.OpenStream()
	require.NoError(t, err)
	deadline := time.Now().Add(50 * time.Millisecond)
	require.True(t, s.startHandshake(fresh, deadline), "the handshake byte is queued")
	require.Empty(t, rt.Mail, "no failure reported")
	<-time.After(time.Until(deadline) + time.Millisecond)
	_, err = fresh.Write([]byte{})
	require.NoError(t, err, "the handshake's write deadline is cleared once the byte is queued")

	for _, p := range lb.peer { // credit comes back
		go func() { _, _ = io.Copy(io.Discard, p) }()
	}
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	for {
		ps, err := lb.peerConn.AcceptStream(ctx)
		require.NoError(t, err, "the peer never got the stream")
		if ps.StreamID() != fresh.StreamID() {
			go func() { _, _ = io.Copy(io.Discard, ps) }()
			continue
		}
		require.NoError(t, wire.ReadHandshake(ps), "the handshake byte arrives")
		return
	}
}

// readIDs gives up on a server that never answers at the handshake's deadline, the last stream
// of a round included (it is read on readIDs' own goroutine), and reports the open failed.
func TestReadIDsGivesUpAtTheDeadline(t *testing.T) {
	lb := quicStreams(t, 1) // the peer accepts the stream and never answers
	rt := newRuntime(testConfig(t, true))
	s := &clientShard{shard: shard{rt: rt}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.readIDs(lb.conn, lb.streams, time.Now().Add(100*time.Millisecond))
	}()
	select {
	case <-done:
	case <-time.After(bound):
		t.Fatal("readIDs still waits for an ID past the handshake's deadline")
	}
	failed, ok := (<-rt.Mail).(openFailed)
	require.True(t, ok, "the open is reported failed")
	require.ErrorIs(t, failed.err, os.ErrDeadlineExceeded)
}
