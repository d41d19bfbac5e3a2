package quicpool_test

import (
	"context"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quicpool/quicpool"
	"github.com/quicpool/quicpool/messages"
	"github.com/stretchr/testify/require"
)

// embedBound is how long the embedding actor waits for any reply of the pool.
const embedBound = 5 * time.Second

// embedAsk tells the embedding actor to send one request to a pool's coordinator.
type embedAsk struct {
	pool *actor.PID
	what string // "get", "state", "wait ready", "flush", "add error", "reset error"
	n    int    // WaitReady's N
}

// embedReply is what the embedding actor receives from its waiting goroutine, and reports.
type embedReply struct {
	what string
	v    any  // the pool's answer: messages.Stream, messages.Stats, error, struct{}
	ok   bool // false: no answer within embedBound
}

// awaitReply waits for one reply outside Receive, at most embedBound, and sends it to the actor
// self as a message: the pattern the README describes for an embedding actor.
func awaitReply[T any](e *actor.Engine, self *actor.PID, what string, reply chan T) {
	go func() {
		timer := time.NewTimer(embedBound)
		defer timer.Stop()
		select {
		case v := <-reply:
			e.Send(self, embedReply{what: what, v: v, ok: true})
		case <-timer.C:
			e.Send(self, embedReply{what: what})
		}
	}()
}

// A pool runs on the caller's engine, and an actor of the caller's system talks to it with the
// requests of package messages, sent to Pool.Coordinator: each with a reply channel of capacity
// one, each reply awaited in a goroutine with a bound of its own and delivered to the actor as a
// message of its own.
func TestEmbeddedInCallersEngine(t *testing.T) {
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	require.NoError(t, err)
	server := startServer(t, 8, quicpool.WithEngine(engine))
	client := startClient(t, 4, 8, server.Addr(), quicpool.WithEngine(engine))
	require.Same(t, engine, server.Engine())
	require.Same(t, engine, client.Engine())

	replies := make(chan embedReply, 16)
	caller := engine.SpawnFunc(func(c *actor.Context) {
		self, e := c.PID(), c.Engine()
		switch m := c.Message().(type) {
		case embedAsk:
			switch m.what {
			case "get":
				deadline := time.Now().Add(embedBound)
				reply := make(chan messages.Stream, 1)
				c.Send(m.pool, messages.Get{Deadline: deadline, Reply: reply})
				go func() {
					timer := time.NewTimer(time.Until(deadline))
					defer timer.Stop()
					select {
					case s := <-reply:
						e.Send(self, embedReply{what: m.what, v: s, ok: true})
					case <-timer.C:
						if s, ok := messages.Abandon(reply); ok { // arrived as we gave up: ours
							e.Send(self, embedReply{what: m.what, v: s, ok: true})
							return
						}
						e.Send(self, embedReply{what: m.what})
					}
				}()
			case "state":
				reply := make(chan messages.Stats, 1)
				c.Send(m.pool, messages.State{Reply: reply})
				awaitReply(e, self, m.what, reply)
			case "wait ready":
				ctx, cancel := context.WithTimeout(context.Background(), embedBound)
				reply := make(chan error, 1)
				c.Send(m.pool, messages.WaitReady{N: m.n, Done: ctx.Done(), Reply: reply})
				go func() {
					defer cancel()
					select {
					case err := <-reply:
						e.Send(self, embedReply{what: m.what, v: err, ok: true})
					case <-ctx.Done():
						e.Send(self, embedReply{what: m.what})
					}
				}()
			case "flush":
				reply := make(chan struct{}, 1)
				c.Send(m.pool, messages.Flush{Reply: reply})
				awaitReply(e, self, m.what, reply)
			case "add error":
				c.Send(m.pool, messages.AddError{})
			case "reset error":
				c.Send(m.pool, messages.ResetError{})
			}
		case embedReply:
			replies <- m
		}
	}, "caller")

	ask := func(pool *actor.PID, what string, n int) {
		engine.Send(caller, embedAsk{pool: pool, what: what, n: n})
	}
	next := func(what string) any {
		t.Helper()
		select {
		case r := <-replies:
			require.Equal(t, what, r.what)
			require.True(t, r.ok, "%s: no answer within %v", what, embedBound)
			return r.v
		case <-waitCtx(t).Done():
			t.Fatalf("%s: the embedding actor got no reply", what)
			return nil
		}
	}
	stats := func(pool *actor.PID) messages.Stats {
		t.Helper()
		ask(pool, "state", 0)
		return next("state").(messages.Stats)
	}

	// WaitReady, then any stream from the server pool, wrapped like Pool's own; the client takes
	// the same stream by ID.
	ask(server.Coordinator(), "wait ready", 4)
	require.Nil(t, next("wait ready"))
	ask(server.Coordinator(), "get", 0)
	s := next("get").(messages.Stream)
	require.NoError(t, s.Err)
	require.Nil(t, quicpool.NewStreamConn(messages.Stream{ID: s.ID, Err: quicpool.ErrTimeout}), "an answer without a stream")
	sc := quicpool.NewStreamConn(s)
	cc, err := client.OutgoingGet(s.ID, 5*time.Second)
	require.NoError(t, err)
	roundTrip(t, sc, cc, kib)
	sc.Close()
	cc.Close()

	// State: one snapshot, the same type Pool.Stats returns.
	snap := stats(client.Coordinator())
	require.Equal(t, 1, snap.ShardsUp)
	require.GreaterOrEqual(t, snap.HandedOut, uint64(1))
	require.NoError(t, snap.Err)

	// The application's error counter, in the order the actor sent the requests.
	ask(server.Coordinator(), "add error", 0)
	ask(server.Coordinator(), "add error", 0)
	require.Equal(t, 2, stats(server.Coordinator()).Errors)
	ask(server.Coordinator(), "reset error", 0)
	require.Equal(t, 0, stats(server.Coordinator()).Errors)

	// Flush answers with one value once the idle streams are gone.
	ask(server.Coordinator(), "wait ready", 4)
	require.Nil(t, next("wait ready"))
	ask(server.Coordinator(), "flush", 0)
	require.Equal(t, struct{}{}, next("flush"))
	after := stats(server.Coordinator())
	require.GreaterOrEqual(t, after.Discarded, uint64(4))
	require.Zero(t, after.Dropped, "every request above had a reply channel that could take its answer")

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
	select {
	case m := <-echo:
		require.Equal(t, "still here", m)
	case <-waitCtx(t).Done():
		t.Fatal("the caller's engine stopped with the pools")
	}
}
