package actors

import (
	"errors"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quicpool/quicpool/internal/core"
	"github.com/quicpool/quicpool/internal/wire"
	"github.com/quicpool/quicpool/messages"
	"github.com/stretchr/testify/require"
)

// coordTest drives a real coordinator directly with the pool's internal protocol.
type coordTest struct {
	t      *testing.T
	engine *actor.Engine
	cfg    *core.Config
	pid    *actor.PID
}

// startCoordinator spawns a coordinator (a client's if client) on a fresh engine; tune may adjust
// the configuration first. The coordinator is stopped when the test ends, and must then leave
// its last Stats and close Stopped.
func startCoordinator(t *testing.T, client bool, tune func(*core.Config)) *coordTest {
	t.Helper()
	engine := newEngine(t)
	cfg := testConfig(t, client)
	if tune != nil {
		tune(cfg)
	}
	rt := &runtime{Config: cfg}
	rt.coordinator = rt.spawn(engine.Spawn, newCoordinator(rt), "coordinator")
	t.Cleanup(func() {
		waitDone(t, engine.Poison(rt.coordinator), "the coordinator to stop")
		require.True(t, isClosed(cfg.Stopped), "a stopped coordinator closes Stopped")
		require.True(t, cfg.Final.Closed, "a stopped coordinator leaves its last Stats")
	})
	return &coordTest{t: t, engine: engine, cfg: cfg, pid: rt.coordinator}
}

func (c *coordTest) send(msgs ...any) {
	for _, m := range msgs {
		c.engine.Send(c.pid, m)
	}
}

// state returns a snapshot taken after every message sent before it was handled.
func (c *coordTest) state() messages.Stats {
	c.t.Helper()
	reply := make(chan messages.Stats, 1)
	c.send(messages.State{Reply: reply})
	return recv(c.t, reply, "the coordinator's State answer")
}

// waitState asks for State until cond holds, for what the coordinator learns asynchronously (a
// watch firing), and returns the snapshot that satisfied it.
func (c *coordTest) waitState(what string, cond func(messages.Stats) bool) messages.Stats {
	c.t.Helper()
	deadline := time.Now().Add(bound)
	for {
		s := c.state()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %v waiting for %s; last state %+v", bound, what, s)
		}
	}
}

// get sends a Get for id ("" for any) and returns its reply channel.
func (c *coordTest) get(id string) chan messages.Stream {
	reply := make(chan messages.Stream, 1)
	c.send(messages.Get{ID: id, Reply: reply})
	return reply
}

// reserve sends a reserveID for shard and returns its reply channel.
func (c *coordTest) reserve(shard *actor.PID) chan string {
	reply := make(chan string, 1)
	c.send(reserveID{shard: shard, reply: reply})
	return reply
}

// shard spawns a fake shard that records what the coordinator sends it.
func (c *coordTest) shard(name string) (*actor.PID, chan any) {
	return spawnRecorder(c.t, c.engine, name+"."+c.cfg.Name)
}

// A Get waiting for an ID is served in the very step that files the stream's arrival: the State
// handled right after already sees it handed out, and the reply already holds it.
func TestGetByIDServedInTheStepTheStreamArrives(t *testing.T) {
	c := startCoordinator(t, false, nil)
	shard, _ := c.shard("shard")
	lb := quicStreams(t, 1)
	reply := make(chan messages.Stream, 1)
	c.send(shardUp{shard: shard, conn: lb.conn},
		messages.Get{ID: "0a0b0c0d", Reply: reply},
		streamReady{shard: shard, id: "0a0b0c0d", stream: lb.streams[0]})
	s := c.state()
	require.Zero(t, s.Waiters, "the waiter was served")
	require.Zero(t, s.Idle, "the stream never sat idle")
	require.Equal(t, uint64(1), s.HandedOut)
	select {
	case got := <-reply:
		require.NoError(t, got.Err)
		require.Equal(t, "0a0b0c0d", got.ID)
		require.Same(t, lb.streams[0], got.Stream)
		require.Same(t, lb.conn, got.Conn)
	default:
		t.Fatal("the stream was not in the reply when the next message was handled")
	}
}

// A Get for any stream takes the oldest idle one and never the control stream; with only the
// control stream idle, a NoWait Get times out at once.
func TestAnyGetTakesOldestAndNeverControl(t *testing.T) {
	c := startCoordinator(t, false, nil)
	shard, _ := c.shard("shard")
	lb := quicStreams(t, 3)
	c.send(shardUp{shard: shard, conn: lb.conn},
		streamReady{shard: shard, id: wire.ControlID, stream: lb.streams[0]},
		streamReady{shard: shard, id: "00000001", stream: lb.streams[1]},
		streamReady{shard: shard, id: "00000002", stream: lb.streams[2]})
	s := c.state()
	require.Equal(t, 2, s.Idle, "the control stream does not count as idle")
	require.True(t, s.Control)
	for i, want := range []string{"00000001", "00000002"} {
		got := recv(t, c.get(""), "a stream for Get any")
		require.NoError(t, got.Err)
		require.Equal(t, want, got.ID, "the oldest idle stream goes first")
		require.Same(t, lb.streams[i+1], got.Stream)
	}
	reply := make(chan messages.Stream, 1)
	c.send(messages.Get{NoWait: true, Reply: reply})
	got := recv(t, reply, "the NoWait answer")
	require.ErrorIs(t, got.Err, core.ErrTimeout, "only the control stream is idle")
	require.Nil(t, got.Stream)
	s = c.state()
	require.True(t, s.Control, "the control stream is still idle")
	require.Zero(t, s.Waiters, "a NoWait Get is not filed")

	got = recv(t, c.get(wire.ControlID), "the control stream by ID")
	require.NoError(t, got.Err)
	require.Same(t, lb.streams[0], got.Stream)
	s = c.state()
	require.False(t, s.Control)
	require.Zero(t, s.Idle, "taking the control stream leaves the idle count alone")
}

// A waiter whose caller abandoned its reply is skipped: the arriving stream goes to the next live
// caller, and the abandoned reply holds nothing but the abandon marker.
func TestAbandonedWaiterIsSkipped(t *testing.T) {
	c := startCoordinator(t, false, nil)
	shard, _ := c.shard("shard")
	lb := quicStreams(t, 1)
	c.send(shardUp{shard: shard, conn: lb.conn})
	abandoned := c.get("")
	live := c.get("")
	require.Equal(t, 2, c.state().Waiters)
	_, delivered := messages.Abandon(abandoned)
	require.False(t, delivered, "nothing was delivered before the abandon")
	require.Equal(t, 1, c.state().Waiters, "a caller that gave up is not counted")
	c.send(streamReady{shard: shard, id: "00000003", stream: lb.streams[0]})
	got := recv(t, live, "the stream for the live caller")
	require.NoError(t, got.Err)
	require.Equal(t, "00000003", got.ID)
	require.Same(t, lb.streams[0], got.Stream)
	require.Len(t, abandoned, 1)
	require.Equal(t, messages.Stream{}, <-abandoned, "the abandoned reply holds only Abandon's marker")
	s := c.state()
	require.Zero(t, s.Waiters)
	require.Zero(t, s.Idle)
	require.Equal(t, uint64(1), s.HandedOut)
}

// A Get whose reply channel could never take its stream safely (nil, unbuffered, two slots) is
// refused and counted in Dropped; the idle stream stays for a proper request.
func TestGetWithUnusableReplyIsRefused(t *testing.T) {
	c := startCoordinator(t, false, nil)
	shard, _ := c.shard("shard")
	lb := quicStreams(t, 1)
	c.send(shardUp{shard: shard, conn: lb.conn},
		streamReady{shard: shard, id: "00000004", stream: lb.streams[0]})
	unbuffered, double := make(chan messages.Stream), make(chan messages.Stream, 2)
	c.send(messages.Get{}, messages.Get{Reply: unbuffered}, messages.Get{Reply: double},
		messages.Get{ID: "00000004", Reply: double})
	s := c.state()
	require.Equal(t, uint64(4), s.Dropped)
	require.Equal(t, 1, s.Idle, "no refused request took the stream")
	require.Zero(t, s.Waiters, "no refused request was filed")
	require.Zero(t, s.HandedOut)
	require.Empty(t, double)
	got := recv(t, c.get("00000004"), "the stream for a proper Get")
	require.Same(t, lb.streams[0], got.Stream)
}

// A Get with a closed reply channel neither panics the coordinator in the middle of a hand-out
// nor loses the stream: it stays idle and goes to the next caller.
func TestGetWithClosedReplyKeepsStream(t *testing.T) {
	c := startCoordinator(t, false, nil)
	shard, _ := c.shard("shard")
	lb := quicStreams(t, 1)
	c.send(shardUp{shard: shard, conn: lb.conn},
		streamReady{shard: shard, id: "00000005", stream: lb.streams[0]})
	closedAny, closedByID := make(chan messages.Stream, 1), make(chan messages.Stream, 1)
	close(closedAny)
	close(closedByID)
	c.send(messages.Get{Reply: closedAny}, messages.Get{ID: "00000005", Reply: closedByID})
	s := c.state()
	require.Equal(t, 1, s.Idle, "the stream went back to the pool")
	require.Zero(t, s.HandedOut)
	require.Equal(t, uint64(2), s.Dropped, "both closed reply channels are counted")
	got := recv(t, c.get(""), "the stream for the next caller")
	require.NoError(t, got.Err)
	require.Same(t, lb.streams[0], got.Stream)
	require.Equal(t, uint64(1), c.state().HandedOut)
}

// Three State requests sharing one channel with room for one: one answer, two drops counted, and
// the coordinator keeps answering.
func TestSharedStateReplyAnswersOnce(t *testing.T) {
	c := startCoordinator(t, false, nil)
	shared := make(chan messages.Stats, 1)
	c.send(messages.State{Reply: shared}, messages.State{Reply: shared}, messages.State{Reply: shared})
	s := c.state()
	require.Equal(t, uint64(2), s.Dropped)
	require.Len(t, shared, 1)
	require.Zero(t, (<-shared).Dropped, "the one answer was the first request's")
}

// WaitReady for more than MaxCap idle streams (or fewer than none) fails at once with
// ErrInvalidArgument; one with no reply channel is refused and counted; a valid one is answered
// once the pool runs with enough idle streams, in the step the stream arrives.
func TestWaitReady(t *testing.T) {
	c := startCoordinator(t, false, nil)
	for _, n := range []int{c.cfg.MaxCap + 1, -1} {
		reply := make(chan error, 1)
		c.send(messages.WaitReady{N: n, Reply: reply})
		err := recv(t, reply, "the WaitReady answer")
		require.ErrorIs(t, err, core.ErrInvalidArgument, "N=%d", n)
	}
	c.send(messages.WaitReady{N: 1})
	require.Equal(t, uint64(1), c.state().Dropped, "a WaitReady without a reply channel is refused")

	shard, _ := c.shard("shard")
	lb := quicStreams(t, 1)
	ready := make(chan error, 1)
	c.send(core.Start{}, listening{addr: "127.0.0.1:1"}, shardUp{shard: shard, conn: lb.conn},
		messages.WaitReady{N: 1, Reply: ready})
	require.True(t, c.state().Running)
	require.Empty(t, ready, "no idle stream yet")
	c.send(streamReady{shard: shard, id: "00000006", stream: lb.streams[0]})
	c.state()
	select {
	case err := <-ready:
		require.NoError(t, err)
	default:
		t.Fatal("WaitReady was not answered in the step the stream arrived")
	}
}

// A server issues the control ID first, then unique 8-hex IDs; beyond MaxCap (the control stream
// apart) a request is held without an answer until room frees up, then granted.
func TestServerIssuesControlIDFirstThenUniqueIDsAndHolds(t *testing.T) {
	c := startCoordinator(t, false, nil) // MaxCap 4
	shard, _ := c.shard("shard")
	lb := quicStreams(t, 4)
	c.send(shardUp{shard: shard, conn: lb.conn})
	require.Equal(t, wire.ControlID, recv(t, c.reserve(shard), "the first ID"), "the control ID comes first")
	c.send(streamReady{shard: shard, id: wire.ControlID, stream: lb.streams[0]})
	issued := map[string]bool{wire.ControlID: true}
	var ids []string
	for range 4 { // MaxCap, the control stream apart
		id := recv(t, c.reserve(shard), "an ID")
		_, err := wire.ParseID(id)
		require.NoError(t, err)
		require.False(t, issued[id], "duplicate ID %s (the control ID is issued once)", id)
		issued[id] = true
		ids = append(ids, id)
	}
	// Three of them become idle; the fourth stays reserved.
	for i, id := range ids[:3] {
		c.send(streamReady{shard: shard, id: id, stream: lb.streams[i+1]})
	}
	s := c.state()
	require.Equal(t, 3, s.Idle)
	require.True(t, s.Control)
	require.Equal(t, 1, s.Opening, "one ID is reserved")

	held := c.reserve(shard)
	s = c.state()
	require.Equal(t, 2, s.Opening, "the request beyond MaxCap is held")
	require.Empty(t, held, "a held request gets no answer")

	c.send(releaseID{shard: shard, id: ids[3]}) // the reserved stream never became idle: room frees up
	id := recv(t, held, "the held request's ID")
	_, err := wire.ParseID(id)
	require.NoError(t, err)
	require.False(t, issued[id] && id != ids[3], "the granted ID %s is unique among the live ones", id)
	require.Equal(t, 1, c.state().Opening, "the granted ID is reserved")
}

// Only the shard an ID was issued to may release it: a release from another shard is ignored; from
// the right shard it ends the reservation and the control ID is issued again.
func TestReleaseIDOnlyFromTheOwningShard(t *testing.T) {
	c := startCoordinator(t, false, nil)
	a, _ := c.shard("a")
	b, _ := c.shard("b")
	lb := quicStreams(t, 0) // a real connection: State reports each connection's health
	c.send(shardUp{shard: a, slot: 0, conn: lb.conn}, shardUp{shard: b, slot: 1, conn: lb.conn})
	require.Equal(t, wire.ControlID, recv(t, c.reserve(a), "the control ID"))

	c.send(releaseID{shard: b, id: wire.ControlID})
	require.Equal(t, 1, c.state().Opening, "a release from another shard is ignored")
	id := recv(t, c.reserve(a), "a second ID")
	require.NotEqual(t, wire.ControlID, id, "the control ID is still issued")

	c.send(releaseID{shard: a, id: wire.ControlID})
	require.Equal(t, 1, c.state().Opening, "the owner's release ends the reservation")
	require.Equal(t, wire.ControlID, recv(t, c.reserve(b), "the control ID again"))
}

// With two connections up and MaxCap 4, one connection gets no more than its share of 2 IDs even
// while the other holds none; its request waits while the other's goes ahead, and is granted once
// the other connection goes down and its share grows.
func TestServerShareCapsOneConnection(t *testing.T) {
	c := startCoordinator(t, false, nil) // MaxCap 4
	a, _ := c.shard("a")
	b, _ := c.shard("b")
	lb := quicStreams(t, 0) // a real connection: State reports each connection's health
	c.send(shardUp{shard: a, slot: 0, conn: lb.conn}, shardUp{shard: b, slot: 1, conn: lb.conn})
	require.NotEmpty(t, recv(t, c.reserve(a), "a's first ID"))
	require.NotEmpty(t, recv(t, c.reserve(a), "a's second ID"))
	held := c.reserve(a)
	require.Equal(t, 3, c.state().Opening, "a's third request is held")
	require.Empty(t, held)

	require.NotEmpty(t, recv(t, c.reserve(b), "b's first ID"), "the pool has room for b")
	require.Empty(t, held, "a is still over its share")

	c.send(shardDown{shard: b})
	require.NotEmpty(t, recv(t, held, "a's held ID once b is down"))
	s := c.state()
	require.Equal(t, 1, s.ShardsUp)
	require.Equal(t, 3, s.Opening, "a holds three reservations, b's is gone")
}

// shardDown forgets the shard's idle streams (a Get for one fails with ErrStreamGone), keeps the
// other shards' streams, and discards a stream the shard hands over after it went down.
func TestShardDownForgetsItsIdleStreams(t *testing.T) {
	c := startCoordinator(t, false, nil)
	a, _ := c.shard("a")
	b, _ := c.shard("b")
	lb := quicStreams(t, 4)
	c.send(shardUp{shard: a, slot: 0, conn: lb.conn}, shardUp{shard: b, slot: 1, conn: lb.conn},
		streamReady{shard: a, id: "0000000a", stream: lb.streams[0]},
		streamReady{shard: a, id: "0000000b", stream: lb.streams[1]},
		streamReady{shard: b, id: "0000000c", stream: lb.streams[2]})
	s := c.state()
	require.Equal(t, 2, s.ShardsUp)
	require.Equal(t, 3, s.Idle)

	c.send(shardDown{shard: a, err: errors.New("connection lost")})
	s = c.state()
	require.Equal(t, 1, s.ShardsUp)
	require.Equal(t, 1, s.Idle)
	for _, id := range []string{"0000000a", "0000000b"} {
		got := recv(t, c.get(id), "the answer for "+id)
		require.ErrorIs(t, got.Err, core.ErrStreamGone, id)
		require.Nil(t, got.Stream)
	}
	got := recv(t, c.get("0000000c"), "the other shard's stream")
	require.NoError(t, got.Err)
	require.Same(t, lb.streams[2], got.Stream)

	c.send(streamReady{shard: a, id: "0000000d", stream: lb.streams[3]})
	s = c.state()
	require.Equal(t, uint64(1), s.Discarded, "a stream of a shard that is down is discarded")
	require.Zero(t, s.Idle)
}

// A client coordinator asks its shard for MinCap streams once it has started and the shard is
// up, and asks for the replacement of a taken stream at once.
func TestClientRefillsAndReplacesTakenStream(t *testing.T) {
	c := startCoordinator(t, true, nil) // MinCap 2, one shard slot
	shard, asked := c.shard("shard")
	lb := quicStreams(t, 2)
	c.send(core.Start{}, shardUp{shard: shard, conn: lb.conn})
	total := 0
	for total < c.cfg.MinCap {
		m := recv(t, asked, "openStreams")
		open, ok := m.(openStreams)
		require.True(t, ok, "the shard got %T", m)
		require.Positive(t, open.n)
		total += open.n
	}
	require.Equal(t, c.cfg.MinCap, total)
	s := c.state()
	require.Equal(t, 2, s.Opening)
	require.True(t, s.Running)

	c.send(streamReady{shard: shard, id: "00000011", stream: lb.streams[0]},
		streamReady{shard: shard, id: "00000012", stream: lb.streams[1]})
	s = c.state()
	require.Equal(t, 2, s.Idle)
	require.Zero(t, s.Opening)
	require.Empty(t, asked, "a full pool asks for nothing")

	got := recv(t, c.get(""), "a stream")
	require.NoError(t, got.Err)
	require.Equal(t, openStreams{n: 1}, recv(t, asked, "the replacement's openStreams"))
	require.Equal(t, 1, c.state().Opening)
}

// A stream the peer's application closed (STOP_SENDING with code 0) before it was taken stops
// counting as idle but is still handed out by its ID.
func TestPeerClosedStreamStaysReachableByID(t *testing.T) {
	c := startCoordinator(t, false, nil)
	shard, _ := c.shard("shard")
	lb := quicStreams(t, 2)
	c.send(shardUp{shard: shard, conn: lb.conn},
		streamReady{shard: shard, id: "00000021", stream: lb.streams[0]},
		streamReady{shard: shard, id: "00000022", stream: lb.streams[1]})
	require.Equal(t, 2, c.state().Idle)

	lb.peer[0].CancelRead(wire.StreamCodeClosed)
	s := c.waitState("the peer close to be seen", func(s messages.Stats) bool { return s.PeerClosed == 1 })
	require.Equal(t, 1, s.Idle, "a peer-closed stream is not idle")
	require.Zero(t, s.Discarded, "a peer-closed stream is kept for its grace period")

	got := recv(t, c.get(""), "any stream")
	require.Equal(t, "00000022", got.ID, "Get any skips the peer-closed stream")
	got = recv(t, c.get("00000021"), "the peer-closed stream by ID")
	require.NoError(t, got.Err)
	require.Same(t, lb.streams[0], got.Stream)
	s = c.state()
	require.Zero(t, s.PeerClosed)
	require.Equal(t, uint64(2), s.HandedOut)
}

// A stream the peer's pool discarded (STOP_SENDING with wire.StreamCodeDiscarded) is gone at once:
// counted as discarded, and a Get for its ID fails with ErrStreamGone.
func TestPeerDiscardedStreamIsGone(t *testing.T) {
	c := startCoordinator(t, false, nil)
	shard, _ := c.shard("shard")
	lb := quicStreams(t, 2)
	c.send(shardUp{shard: shard, conn: lb.conn},
		streamReady{shard: shard, id: "00000031", stream: lb.streams[0]},
		streamReady{shard: shard, id: "00000032", stream: lb.streams[1]})
	require.Equal(t, 2, c.state().Idle)

	lb.peer[0].CancelRead(wire.StreamCodeDiscarded)
	s := c.waitState("the peer's discard to be seen", func(s messages.Stats) bool { return s.Discarded == 1 })
	require.Equal(t, 1, s.Idle)
	require.Zero(t, s.PeerClosed)
	got := recv(t, c.get("00000031"), "the answer for the discarded ID")
	require.ErrorIs(t, got.Err, core.ErrStreamGone)
	require.Nil(t, got.Stream)
	got = recv(t, c.get("00000032"), "the other stream")
	require.Same(t, lb.streams[1], got.Stream)
}

// Flush discards every idle stream, the control stream included, and answers its reply once.
func TestFlushDiscardsEveryIdleStream(t *testing.T) {
	c := startCoordinator(t, false, nil)
	shard, _ := c.shard("shard")
	lb := quicStreams(t, 3)
	c.send(shardUp{shard: shard, conn: lb.conn},
		streamReady{shard: shard, id: wire.ControlID, stream: lb.streams[0]},
		streamReady{shard: shard, id: "00000041", stream: lb.streams[1]},
		streamReady{shard: shard, id: "00000042", stream: lb.streams[2]})
	require.Equal(t, 2, c.state().Idle)

	reply := make(chan struct{}, 1)
	c.send(messages.Flush{Reply: reply})
	recv(t, reply, "the Flush answer")
	s := c.state()
	require.Zero(t, s.Idle)
	require.False(t, s.Control)
	require.Equal(t, uint64(3), s.Discarded)
	require.Empty(t, reply, "Flush answers once")
	got := recv(t, c.get("00000041"), "the answer for a flushed ID")
	require.ErrorIs(t, got.Err, core.ErrStreamGone)
}

// A forged actor.Stopped is dropped by the sealLifecycle middleware: the coordinator keeps
// answering and does not close Stopped.
func TestCoordinatorIgnoresForgedStopped(t *testing.T) {
	c := startCoordinator(t, false, nil)
	c.send(actor.Stopped{}, actor.Started{}, actor.Initialized{}, messages.AddError{})
	s := c.state()
	require.Equal(t, 1, s.Errors, "the coordinator kept handling messages")
	require.False(t, s.Closed)
	require.False(t, isClosed(c.cfg.Stopped), "a forged Stopped does not stop the pool")
}

// Room freed by a take goes to a held stream in the same step: a full server gives a stream
// held for lack of room its ID the moment a stream is handed out, not at the next tick.
func TestHeldReserveGrantedWhenStreamTaken(t *testing.T) {
	c := startCoordinator(t, false, nil) // MaxCap 4
	shard, _ := c.shard("shard")
	lb := quicStreams(t, 4)
	c.send(shardUp{shard: shard, conn: lb.conn})
	for i := range 5 { // the control stream and 3 others become idle, the 5th stays reserved
		id := recv(t, c.reserve(shard), "an ID")
		if i < 4 {
			c.send(streamReady{shard: shard, id: id, stream: lb.streams[i]})
		}
	}
	held := c.reserve(shard)
	require.Equal(t, 2, c.state().Opening)
	require.Empty(t, held)
	require.NoError(t, recv(t, c.get(""), "a stream").Err) // a stream is taken: room frees up
	c.state()
	require.NotEmpty(t, held, "the held request is granted in the step a stream is taken")
}

// The control ID exists once, even when a connection dies during the control stream's handshake:
// A's reservation of it dies with A, B gets it, and a stale release from A's goroutine does not
// let B's next streams get it again.
func TestControlIDIssuedOnceThroughAConnectionRace(t *testing.T) {
	c := startCoordinator(t, false, nil)
	a, _ := c.shard("a")
	b, _ := c.shard("b")
	lb := quicStreams(t, 1)
	c.send(shardUp{shard: a, slot: 0, conn: lb.conn}, shardUp{shard: b, slot: 1, conn: lb.conn})
	require.Equal(t, wire.ControlID, recv(t, c.reserve(a), "the control ID"))
	c.send(shardDown{shard: a})
	require.Equal(t, wire.ControlID, recv(t, c.reserve(b), "the control ID, A's reservation gone"))
	c.send(releaseID{shard: a, id: wire.ControlID}) // stale: A is gone
	for range 3 {
		require.NotEqual(t, wire.ControlID, recv(t, c.reserve(b), "another ID"))
	}
	c.send(streamReady{shard: b, id: wire.ControlID, stream: lb.streams[0]})
	require.True(t, c.state().Control, "B's control stream is idle")
}
