package quicpool_test

import (
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quicpool/quicpool"
	"github.com/quicpool/quicpool/messages"
	"github.com/stretchr/testify/require"
)

// A pool runs on the caller's engine, and an actor of the caller's system takes streams from it
// by sending messages.Get to the coordinator.
func TestEmbeddedInCallersEngine(t *testing.T) {
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	require.NoError(t, err)
	server := startServer(t, 8, quicpool.WithEngine(engine))
	client := startClient(t, 4, 8, server.Addr(), quicpool.WithEngine(engine))
	require.Same(t, engine, server.Engine())
	require.NoError(t, server.WaitReady(waitCtx(t), 4))

	// The caller's actor: asks the server pool for any stream, waits for the reply in a
	// goroutine (never in Receive), and receives the stream as a message of its own.
	got := make(chan messages.Stream, 1)
	coordinator := server.Coordinator()
	engine.SpawnFunc(func(c *actor.Context) {
		switch m := c.Message().(type) {
		case actor.Started:
			reply := make(chan messages.Stream, 1)
			c.Send(coordinator, messages.Get{ID: "", Deadline: time.Now().Add(5 * time.Second), Reply: reply})
			self, e := c.PID(), c.Engine()
			go func() { e.Send(self, <-reply) }()
		case messages.Stream:
			got <- m
		}
	}, "tunnel")

	var s messages.Stream
	select {
	case s = <-got:
	case <-waitCtx(t).Done():
		t.Fatal("the embedding actor got no stream")
	}
	require.NoError(t, s.Err)
	sc := quicpool.NewStreamConn(s)
	cc, err := client.OutgoingGet(s.ID, 5*time.Second)
	require.NoError(t, err)
	roundTrip(t, sc, cc, kib)
	sc.Close()
	cc.Close()

	// State through the same protocol.
	state := make(chan messages.Stats, 1)
	engine.Send(client.Coordinator(), messages.State{Reply: state})
	snap := <-state
	require.Equal(t, 1, snap.ShardsUp)
	require.GreaterOrEqual(t, snap.HandedOut, uint64(1))

	// Closing the pools leaves the caller's engine working.
	server.Close()
	client.Close()
	echo := make(chan string, 1)
	pid := engine.SpawnFunc(func(c *actor.Context) {
		if m, ok := c.Message().(string); ok {
			echo <- m
		}
	}, "after")
	engine.Send(pid, "still here")
	require.Equal(t, "still here", <-echo)
}
