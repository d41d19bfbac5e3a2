package actors

import (
	"context"
	"testing"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestServerShardHandsARoundInOneMessage: a client's round of opens reaches the server's
// coordinator in messages of up to handshakeBatch streams, not one message per stream. Most of
// the round is in the server connection's queue before the shard starts accepting: the client
// sends a datagram after its streams and the server starts the shard once it arrived (quic-go
// may send the datagram before the last of the streams, which then come in a later message).
func TestServerShardHandsARoundInOneMessage(t *testing.T) {
	const round = 2 * handshakeBatch
	serverTLS, clientTLS := loopbackTLS(t)
	conf := &quic.Config{EnableDatagrams: true}
	ln, err := quic.ListenAddr("127.0.0.1:0", serverTLS, conf)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	client, err := quic.DialAddr(ctx, ln.Addr().String(), clientTLS, conf)
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.CloseWithError(0, "test over") })
	server, err := ln.Accept(ctx)
	require.NoError(t, err)

	for range round {
		s, err := client.OpenStream()
		require.NoError(t, err)
		_, err = s.Write([]byte{0})
		require.NoError(t, err)
	}
	require.NoError(t, client.SendDatagram([]byte("after the round")))
	_, err = server.ReceiveDatagram(ctx)
	require.NoError(t, err)

	engine := newEngine(t)
	rt := newRuntime(testConfig(t, false))
	got := recordCoordinator(t, engine, rt)
	rt.supervisor, _ = spawnRecorder(t, engine, "supervisor."+rt.Name)
	closed := make(chan struct{})
	pid := rt.spawn(engine.Spawn, newServerShard(rt, 0, server, closed), "shard0", smallInbox)
	t.Cleanup(func() {
		waitDone(t, engine.Poison(pid), "the shard to stop")
		recv(t, closed, "the shard to close its connection")
	})

	streams, messages := 0, 0
	for streams < round {
		if m, ok := recv(t, got, "the shard's streams").(handshaken); ok {
			require.LessOrEqual(t, len(m.streams), handshakeBatch)
			streams += len(m.streams)
			messages++
		}
	}
	assert.Equal(t, round, streams)
	assert.Less(t, messages, round/4, "a message per stream, or close to it")
}
