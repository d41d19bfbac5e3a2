package quicpool_test

import (
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quicpool/quicpool"
	"github.com/quicpool/quicpool/messages"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fastRetry is a restart policy quick enough for tests, without jitter.
var fastRetry = quicpool.RestartPolicy{InitialBackoff: 20 * time.Millisecond, MaxBackoff: 160 * time.Millisecond, Jitter: -1, MaxRestarts: -1}

// The server dies while the client pool is full, and a new server comes up on the same port a
// second later: the client serves streams from the new server, never a stream of the dead
// connection, and asking for a dead ID fails.
func TestClientHealsWhenServerReturns(t *testing.T) {
	first := quicpool.NewServerPool(8, "", selfSigned(t), "127.0.0.1:0", time.Second)
	go first.ServerManager()
	addr := listenAddr(first)
	client := startClient(t, 8, 8, addr, quicpool.WithRestartPolicy(fastRetry))
	require.NoError(t, first.WaitReady(waitCtx(t), 8))
	deadID, c, err := first.IncomingGet(time.Second)
	require.NoError(t, err)
	c.Close()
	first.Close()

	time.Sleep(time.Second) // the server is down for a second: that is the scenario
	second := quicpool.NewServerPool(8, "", selfSigned(t), addr, time.Second)
	go second.ServerManager()
	defer second.Close()
	back := time.Now()
	require.NoError(t, client.WaitReady(waitCtx(t), 8))
	t.Logf("client full again %v after the server's return", time.Since(back))
	require.Less(t, time.Since(back), 10*time.Second, "within the handshake timeout plus the backoff ceiling")

	for range 8 {
		sc, cc := tunnel(t, second, client, kib) // only streams of the new server are handed out
		sc.Close()
		cc.Close()
	}
	_, err = client.OutgoingGet(deadID, time.Minute)
	require.ErrorIs(t, err, quicpool.ErrStreamGone)
	s := snapshot(client)
	assert.GreaterOrEqual(t, s.Restarts, uint64(1))
}

// A server that never comes back: the client retries with the policy's backoff, counted
// against a resolver that always fails, and its goroutine count stays flat.
func TestDialRetriesFollowBackoff(t *testing.T) {
	calls := make(chan time.Time, 100)
	resolver := func() (string, error) {
		calls <- time.Now()
		return "", errors.New("no such host")
	}
	baseline := runtime.NumGoroutine()
	client := quicpool.NewClientPool(1, 1, 0, 0, time.Second, "1", "localhost", resolver,
		quicpool.WithRestartPolicy(fastRetry))
	go client.ClientManager()
	defer client.Close()

	var times []time.Time
	peak := 0
	for len(times) < 8 {
		select {
		case at := <-calls:
			times = append(times, at)
			peak = max(peak, runtime.NumGoroutine())
		case <-waitCtx(t).Done():
			t.Fatalf("only %d dial attempts", len(times))
		}
	}
	want := []time.Duration{20, 40, 80, 160, 160, 160, 160}
	for i, w := range want {
		gap := times[i+1].Sub(times[i])
		assert.GreaterOrEqual(t, gap, w*time.Millisecond*9/10, "gap %d", i)
		assert.Less(t, gap, w*time.Millisecond+time.Second, "gap %d", i)
	}
	assert.LessOrEqual(t, peak-baseline, 6, "goroutines stay flat while retrying")
	s := waitFor(t, client, "the restarts to be counted", func(s messages.Stats) bool { return s.Restarts >= 7 })
	require.ErrorContains(t, s.Err, "no such host")
}

// Restarts beyond the intensity limit escalate: Get calls fail at once with ErrUnavailable
// while no connection is up, an event says so, and the pool recovers when the server appears.
func TestEscalationAndRecovery(t *testing.T) {
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	require.NoError(t, err)
	events := subscribe(t, engine)

	addr := make(chan string, 1)
	addr <- "" // no server yet
	resolver := func() (string, error) {
		a := <-addr
		addr <- a
		if a == "" {
			return "", errors.New("server not up")
		}
		return a, nil
	}
	policy := fastRetry
	policy.MaxRestarts, policy.Window = 3, time.Minute
	client := quicpool.NewClientPool(2, 2, 0, 0, time.Second, "1", "localhost", resolver,
		quicpool.WithRestartPolicy(policy), quicpool.WithEngine(engine))
	go client.ClientManager()
	defer client.Close()

	waitEvent(t, events, messages.EventUnavailable)
	start := time.Now()
	_, err = client.OutgoingGet(quicpool.ControlID, time.Minute)
	require.ErrorIs(t, err, quicpool.ErrUnavailable)
	require.ErrorContains(t, err, "server not up", "wraps the last failure")
	require.Less(t, time.Since(start), 30*time.Second, "fails at once, not after its timeout")

	server := startServer(t, 2)
	<-addr
	addr <- server.Addr()
	waitEvent(t, events, messages.EventRecovered)
	require.NoError(t, client.WaitReady(waitCtx(t), 2))
	sc, cc := tunnel(t, server, client, kib)
	sc.Close()
	cc.Close()
}

// A TLS failure is permanent: it is retried at the ceiling, and the event says why.
func TestPermanentFailureRetriesAtCeiling(t *testing.T) {
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	require.NoError(t, err)
	events := subscribe(t, engine)
	server := startServer(t, 1)
	client := quicpool.NewClientPool(1, 1, 0, 0, time.Second, "2", "localhost", quicpool.StaticAddr(server.Addr()),
		quicpool.WithRestartPolicy(fastRetry), quicpool.WithEngine(engine))
	go client.ClientManager()
	defer client.Close()
	ev := waitEvent(t, events, messages.EventRestartScheduled)
	require.True(t, ev.Permanent)
	require.Equal(t, fastRetry.Ceiling(), ev.Delay)
	var verify interface{ Unwrap() error }
	require.ErrorAs(t, ev.Err, &verify)
	require.ErrorContains(t, ev.Err, "certificate")
}

// Close in the middle of a restart storm (64 shards failing and restarting as fast as the
// policy allows) returns promptly and leaves no goroutine behind.
func TestCloseDuringRestartStorm(t *testing.T) {
	baseline := runtime.NumGoroutine()
	calls := make(chan struct{}, 1)
	resolver := func() (string, error) {
		select {
		case calls <- struct{}{}:
		default:
		}
		return "", errors.New("down")
	}
	policy := quicpool.RestartPolicy{InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond, MaxRestarts: -1}
	client := quicpool.NewClientPool(64*128, 64*128, 0, 0, time.Second, "1", "localhost", resolver,
		quicpool.WithRestartPolicy(policy))
	require.Equal(t, 64, client.ShardCount())
	go client.ClientManager()
	for range 50 {
		<-calls
	}
	start := time.Now()
	client.Close()
	require.Less(t, time.Since(start), 5*time.Second)
	settleGoroutines(t, baseline)
}

// A resolver that panics fails that dial with ErrPanic: the slot restarts after its backoff and
// connects, and Close returns with no goroutine left behind.
func TestPanickingResolverIsAFailedDial(t *testing.T) {
	server := startServer(t, 2)
	baseline := runtime.NumGoroutine()
	panicOnce := make(chan struct{}, 1)
	panicOnce <- struct{}{}
	resolver := func() (string, error) {
		select {
		case <-panicOnce:
			panic("resolver bug")
		default:
			return server.Addr(), nil
		}
	}
	client := quicpool.NewClientPool(2, 2, 0, 0, time.Second, "1", "localhost", resolver,
		quicpool.WithRestartPolicy(fastRetry))
	go client.ClientManager()
	require.NoError(t, client.WaitReady(waitCtx(t), 2), "the slot restarted after the panic")
	require.Empty(t, panicOnce, "the first dial panicked")
	require.Equal(t, uint64(1), client.Stats().Restarts)

	closed := make(chan struct{})
	go func() { client.Close(); close(closed) }()
	select {
	case <-closed:
	case <-waitCtx(t).Done():
		t.Fatal("Close did not return")
	}
	settleGoroutines(t, baseline)
}

// When a client's connection dies, the server's shard stops, its streams are purged, and the
// client's next connection takes the free slot.
func TestServerSlotIsFreedForNextConnection(t *testing.T) {
	server := startServer(t, 2) // one shard slot
	first := startClient(t, 2, 2, server.Addr())
	require.NoError(t, server.WaitReady(waitCtx(t), 2))
	first.Close()
	waitFor(t, server, "the server to drop the dead connection", func(s messages.Stats) bool {
		return s.ShardsUp == 0 && s.Idle == 0
	})
	second := startClient(t, 2, 2, server.Addr())
	sc, cc := tunnel(t, server, second, kib)
	sc.Close()
	cc.Close()
}

// A flood of Get calls with tiny timeouts leaves no pile of waiters behind.
func TestGetFloodStaysBounded(t *testing.T) {
	server := startServer(t, 1) // no client: nothing arrives, every call times out
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for range 500 {
				_, _, err := server.IncomingGet(time.Microsecond)
				if !errors.Is(err, quicpool.ErrTimeout) {
					t.Errorf("unexpected %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	s := snapshot(server)
	require.Less(t, s.Waiters, 2048, "expired waiters are swept as new ones come")
}

// subscribe returns the pool events broadcast on engine.
func subscribe(t *testing.T, engine *actor.Engine) chan messages.Event {
	events := make(chan messages.Event, 1024)
	pid := engine.SpawnFunc(func(c *actor.Context) {
		if ev, ok := c.Message().(messages.Event); ok {
			select {
			case events <- ev:
			default:
			}
		}
	}, "events")
	engine.Subscribe(pid)
	t.Cleanup(func() { engine.Unsubscribe(pid) })
	return events
}

func waitEvent(t *testing.T, events chan messages.Event, kind messages.EventKind) messages.Event {
	t.Helper()
	for {
		select {
		case ev := <-events:
			if ev.Kind == kind {
				return ev
			}
		case <-waitCtx(t).Done():
			t.Fatalf("no %q event", kind)
		}
	}
}

// A dying connection cancels every idle stream's context; that must not be mistaken for the peer
// closing each stream (no stream is moved to "closed by peer", no open is sent to the dead shard,
// and the last error is the connection's).
func TestConnectionDeathIsNotPeerClose(t *testing.T) {
	server := startServer(t, 64)
	client := startClient(t, 32, 32, server.Addr(),
		quicpool.WithRestartPolicy(quicpool.RestartPolicy{InitialBackoff: time.Hour, MaxBackoff: time.Hour}))
	require.NoError(t, server.WaitReady(waitCtx(t), 32))
	before := client.Stats()
	peerClosed := 0
	server.Close()
	s := waitFor(t, client, "the shard to go down", func(s messages.Stats) bool {
		peerClosed = max(peerClosed, s.PeerClosed)
		return s.ShardsUp == 0
	})
	require.Zero(t, peerClosed)
	require.Equal(t, before.Failed, s.Failed, "no open failed against the dead connection")
	require.ErrorContains(t, s.Err, "connection closed by the server pool", "the server's reason, not a symptom")
}

// Pools that share an engine are told apart in its events: Event.Pool is the coordinator of the
// pool that broadcast it. Two pairs, each client on its own server: a client's "shard up" names
// its own server's address, a server's names a client's.
func TestEventsNameTheirPool(t *testing.T) {
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	require.NoError(t, err)
	events := subscribe(t, engine)
	serverA := startServer(t, 8, quicpool.WithEngine(engine))
	serverB := startServer(t, 8, quicpool.WithEngine(engine))
	clientA := startClient(t, 2, 2, serverA.Addr(), quicpool.WithEngine(engine))
	clientB := startClient(t, 2, 2, serverB.Addr(), quicpool.WithEngine(engine))

	peerOf := map[string]string{ // pool -> the address its "shard up" names ("" for a client's)
		serverA.Coordinator().ID: "", serverB.Coordinator().ID: "",
		clientA.Coordinator().ID: serverA.Addr(), clientB.Coordinator().ID: serverB.Addr(),
	}
	named := map[string]bool{}
	for len(named) < len(peerOf) {
		ev := waitEvent(t, events, messages.EventShardUp)
		require.NotNil(t, ev.Pool)
		peer, ok := peerOf[ev.Pool.ID]
		require.True(t, ok, "an event of no pool here: %s", ev.Pool.ID)
		if peer != "" {
			require.Equal(t, peer, ev.Addr, "a client's event names its own server")
		} else {
			require.NotContains(t, []string{serverA.Addr(), serverB.Addr()}, ev.Addr, "a server's event names a client")
		}
		named[ev.Pool.ID] = true
	}
}
