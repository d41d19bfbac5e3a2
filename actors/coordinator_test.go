package actors

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quic-go/quic-go"
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
	sup    chan any   // what the coordinator sent the supervisor (a recorder)
	supPID *actor.PID // the recorder

	onlyShard *actor.PID // the shard of handshakenOnOneShard
}

// startCoordinator spawns a coordinator (a client's if client) on a fresh engine; tune may adjust
// the configuration first. The coordinator is stopped when the test ends, and must then leave
// its last Stats and close Stopped.
func startCoordinator(t *testing.T, client bool, tune func(*core.Config)) *coordTest {
	t.Helper()
	return startCoordinatorRT(t, client, tune, nil)
}

// startCoordinatorRT is startCoordinator that also sets the runtime's test hooks.
func startCoordinatorRT(t *testing.T, client bool, tune func(*core.Config), hooks func(*runtime)) *coordTest {
	t.Helper()
	engine := newEngine(t)
	cfg := testConfig(t, client)
	if tune != nil {
		tune(cfg)
	}
	rt := newRuntime(cfg)
	if hooks != nil {
		hooks(rt)
	}
	var sup chan any
	rt.supervisor, sup = spawnRecorder(t, engine, "supervisor."+cfg.Name)
	rt.coordinator = rt.spawn(engine.Spawn, newCoordinator(rt), "coordinator", coordinatorInbox)
	t.Cleanup(func() {
		waitDone(t, engine.Poison(rt.coordinator), "the coordinator to stop")
		require.True(t, core.IsClosed(cfg.Stopped), "a stopped coordinator closes Stopped")
		require.True(t, cfg.Final.Closed, "a stopped coordinator leaves its last Stats")
	})
	return &coordTest{t: t, engine: engine, cfg: cfg, pid: rt.coordinator, sup: sup, supPID: rt.supervisor}
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

// accounted returns a snapshot and checks that it accounts for every stream the coordinator
// opened (messages.Stats.Lost).
func (c *coordTest) accounted(when string) messages.Stats {
	c.t.Helper()
	s := c.state()
	control := 0
	if s.Control {
		control = 1
	}
	require.Equal(c.t, s.Opened, s.HandedOut+s.Discarded+s.Lost+uint64(s.Idle+s.Withheld+s.PeerClosed+control),
		"%s: every stream opened is accounted for: %+v", when, s)
	return s
}

// get sends a Get for id ("" for any) and returns its reply channel.
func (c *coordTest) get(id string) chan messages.Stream {
	reply := make(chan messages.Stream, 1)
	c.send(messages.Get{ID: id, Reply: reply})
	return reply
}

// handshaken hands the coordinator the server side of lb's stream i as shard's handshaken stream.
func (c *coordTest) handshaken(shard *actor.PID, lb loopback, i int) {
	c.send(handshaken{shard: shard, streams: []*quic.Stream{lb.peer[i]}})
}

// issuedID reads the ID the server wrote on lb's stream i, from the client side.
func issuedID(t *testing.T, lb loopback, i int) string {
	t.Helper()
	require.NoError(t, lb.streams[i].SetReadDeadline(time.Now().Add(bound)))
	id, err := wire.ReadID(lb.streams[i])
	require.NoError(t, err, "the ID of stream %d", i)
	return id
}

// shard spawns a fake shard that records what the coordinator sends it.
func (c *coordTest) shard(name string) (*actor.PID, chan any) {
	return spawnRecorder(c.t, c.engine, name+"."+c.cfg.Name)
}

// Gets for any stream take up to handOutRun in a row from one connection of a peer, then go on
// to its next connection: streams taken together share packets.
func TestAnyGetsTakeRunsFromOneConnection(t *testing.T) {
	c := startCoordinator(t, false, func(cfg *core.Config) { cfg.MinCap, cfg.MaxCap, cfg.Shards = 64, 64, 1 })
	a, _ := c.shard("a")
	b, _ := c.shard("b")
	lb := quicStreams(t, 2*handOutRun)
	c.send(shardUp{shard: a, slot: 0, conn: lb.conn}, shardUp{shard: b, slot: 1, conn: lb.conn}) // one peer
	for i := range handOutRun {
		c.send(streamReady{shard: a, id: fmt.Sprintf("000000a%x", i), stream: lb.streams[i]},
			streamReady{shard: b, id: fmt.Sprintf("000000b%x", i), stream: lb.streams[handOutRun+i]})
	}
	var from []byte
	for range handOutRun + 1 {
		got := recv(t, c.get(""), "a stream for Get any")
		require.NoError(t, got.Err)
		from = append(from, got.ID[6])
	}
	require.Equal(t, strings.Repeat("a", handOutRun)+"b", string(from))
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

// A Get whose caller gave up before the coordinator handled it (Abandon filled its slot) and
// that is answered without a stream (nothing idle for a NoWait Get, a malformed ID) is no drop:
// only a reply channel that could not take an answer its caller still waits for is counted.
func TestAbandonedGetIsNoDrop(t *testing.T) {
	c := startCoordinator(t, false, nil)
	noWait, badID := make(chan messages.Stream, 1), make(chan messages.Stream, 1)
	for _, reply := range []chan messages.Stream{noWait, badID} {
		_, answered := messages.Abandon(reply)
		require.False(t, answered)
	}
	c.send(messages.Get{Reply: noWait, NoWait: true}, messages.Get{ID: "zz", Reply: badID})
	waiting := make(chan messages.Stream, 1)
	c.send(messages.Get{Reply: waiting, NoWait: true})
	require.ErrorIs(t, recv(t, waiting, "the answer of a caller still waiting").Err, core.ErrTimeout)
	s := c.state()
	require.Zero(t, s.Dropped, "the callers who gave up lost nothing")
	require.Zero(t, s.Waiters)
}

// A Get whose reply channel is closed after it was filed neither panics the coordinator in the
// middle of a hand-out nor loses the stream: it stays idle and goes to the next caller.
func TestGetWithClosedReplyKeepsStream(t *testing.T) {
	c := startCoordinator(t, false, nil)
	shard, _ := c.shard("shard")
	lb := quicStreams(t, 1)
	closedAny, closedByID := c.get(""), c.get("00000005")
	require.Equal(t, 2, c.state().Waiters)
	close(closedAny)
	close(closedByID)
	c.send(shardUp{shard: shard, conn: lb.conn},
		streamReady{shard: shard, id: "00000005", stream: lb.streams[0]})
	s := c.state()
	require.Equal(t, 1, s.Idle, "the stream went back to the pool")
	require.Zero(t, s.HandedOut)
	require.Equal(t, uint64(2), s.Dropped, "both closed reply channels are counted")
	got := recv(t, c.get(""), "the stream for the next caller")
	require.NoError(t, got.Err)
	require.Same(t, lb.streams[0], got.Stream)
	require.Equal(t, uint64(1), c.state().HandedOut)
}

// A Get or a WaitReady whose reply channel is closed is refused and counted at once, even when
// nothing could answer it yet: it is not left waiting.
func TestRequestWithClosedReplyIsRefusedAtOnce(t *testing.T) {
	c := startCoordinator(t, false, nil) // nothing idle, no connection
	getReply, readyReply := make(chan messages.Stream, 1), make(chan error, 1)
	close(getReply)
	close(readyReply)
	c.send(messages.Get{Reply: getReply}, messages.Get{ID: testID(1), Reply: getReply},
		messages.WaitReady{N: 1, Reply: readyReply})
	s := c.state()
	require.Equal(t, uint64(3), s.Dropped)
	require.Zero(t, s.Waiters, "no closed request was filed")
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

// A server issues the control ID first, then IDs unique among the live ones, writes each on its
// stream and files it, all in one step; a stream beyond MaxCap is held without an ID.
func TestServerIssuesControlIDFirstThenUniqueIDsAndHolds(t *testing.T) {
	c := startCoordinator(t, false, nil) // MaxCap 4
	shard, _ := c.shard("shard")
	lb := quicStreams(t, 6)
	c.send(shardUp{shard: shard, conn: lb.conn})
	for i := range 6 {
		c.handshaken(shard, lb, i)
	}
	s := c.state()
	require.Equal(t, 4, s.Idle, "MaxCap, the control stream apart")
	require.True(t, s.Control)
	require.Equal(t, 1, s.Opening, "the stream beyond MaxCap is held")
	require.Equal(t, wire.ControlID, issuedID(t, lb, 0), "the control ID comes first")
	issued := map[string]bool{wire.ControlID: true}
	for i := 1; i < 5; i++ {
		id := issuedID(t, lb, i)
		_, err := wire.ParseID(id)
		require.NoError(t, err)
		require.False(t, issued[id], "duplicate ID %s (the control ID is issued once)", id)
		issued[id] = true
	}
	require.NoError(t, recv(t, c.get(""), "a stream").Err) // a stream is taken: room frees up
	s = c.state()
	require.Zero(t, s.Opening, "the held stream is issued an ID in the step a stream is taken")
	require.Equal(t, 4, s.Idle)
	require.False(t, issued[issuedID(t, lb, 5)], "the held stream's ID is unique")
}

// A silent connection's new streams are held without an ID, however much room the pool has, until
// it answers again: the IDs may never reach its client, and its idle streams do not count while it
// is silent, so its share would not bound them. Then they get their IDs at once.
func TestServerHoldsASilentConnectionsStreams(t *testing.T) {
	c := startCoordinator(t, false, nil) // MaxCap 4
	shard, _ := c.shard("shard")
	lb := quicStreams(t, 3)
	c.send(shardUp{shard: shard, conn: lb.conn}, liveness{shard: shard, suspect: true, heard: time.Now()})
	for i := range 3 {
		c.handshaken(shard, lb, i)
	}
	s := c.state()
	require.Equal(t, 3, s.Opening, "all three held")
	require.Len(t, s.Conns, 1)
	require.Zero(t, s.Conns[0].Opened, "no ID issued")

	c.send(liveness{shard: shard, suspect: false, heard: time.Now()})
	s = c.state()
	require.Zero(t, s.Opening)
	require.Equal(t, 2, s.Idle, "the control stream apart")
	require.Equal(t, uint64(3), s.Conns[0].Opened)
	require.Equal(t, wire.ControlID, issuedID(t, lb, 0))
}

// A client whose only connection went silent cannot replace the streams it loses meanwhile; when
// the connection answers again, it opens them at once, not at its next tick.
func TestClientMakesUpWhatItLostWhileItsConnectionWasSilent(t *testing.T) {
	c := startCoordinator(t, true, nil) // MinCap 2, MaxCap 4, one connection, ticks an hour apart
	shard, asked := c.shard("shard")
	lb := quicStreams(t, 2)
	c.send(shardUp{shard: shard, conn: lb.conn}, core.Start{})
	require.Equal(t, openStreams{n: 2}, recv(t, asked, "the fill"))
	c.send(streamReady{shard: shard, id: "00000051", stream: lb.streams[0]},
		streamReady{shard: shard, id: "00000052", stream: lb.streams[1]},
		liveness{shard: shard, suspect: true, heard: time.Now()})
	// Handled before the stream is lost: the periodic checkPeers, which may come between those
	// messages, must not see the loss while the connection still answers.
	require.Equal(t, 0, c.state().Idle, "its only connection is silent")

	lb.peer[0].CancelRead(wire.StreamCodeDiscarded)
	waitDone(t, lb.streams[0].Context(), "the peer's STOP_SENDING to arrive")
	c.send(checkPeers{})
	require.Equal(t, uint64(1), c.state().Discarded, "lost while the connection was silent")
	require.Empty(t, asked, "its only connection is silent: nothing to open on")

	c.send(liveness{shard: shard, suspect: false, heard: time.Now()})
	require.Equal(t, openStreams{n: 1}, recv(t, asked, "the lost stream, opened as the connection answers"))
}

// handshakenOnOneShard brings up one shard of c on a loopback of n streams and hands c the
// server side of the first k as handshaken; the shard is c.onlyShard.
func (c *coordTest) handshakenOnOneShard(n, k int) loopback {
	c.t.Helper()
	c.onlyShard, _ = c.shard("shard")
	lb := quicStreams(c.t, n)
	c.send(shardUp{shard: c.onlyShard, conn: lb.conn})
	for i := range k {
		c.handshaken(c.onlyShard, lb, i)
	}
	return lb
}

// A held stream whose client gave up on it (reset it) is discarded when room frees up, and the
// room goes to the next one.
func TestHeldStreamWhoseClientGaveUpIsDiscarded(t *testing.T) {
	c := startCoordinator(t, false, nil) // MaxCap 4
	lb := c.handshakenOnOneShard(7, 7)   // the control stream, 4 idle, 2 held
	require.Equal(t, 2, c.state().Opening)
	lb.streams[5].CancelRead(1) // the client gives up on the first held stream
	lb.streams[5].CancelWrite(1)
	select {
	case <-lb.peer[5].Context().Done(): // the server saw it give up
	case <-time.After(bound):
		t.Fatal("the server never saw the client give up")
	}
	failedBefore := c.state().Failed
	require.NoError(t, recv(t, c.get(""), "a stream").Err)
	s := c.state()
	require.Zero(t, s.Opening)
	require.Equal(t, failedBefore+1, s.Failed, "the abandoned stream is counted")
	require.NotEmpty(t, issuedID(t, lb, 6), "the room went to the next held stream")
}

// With two connections up and MaxCap 4, one connection gets no more than its share of 2 streams
// even while the other holds none; its third stream waits while the other's goes ahead, and is
// issued an ID once the other connection goes down and its share grows.
func TestServerShareCapsOneConnection(t *testing.T) {
	c := startCoordinator(t, false, nil) // MaxCap 4
	a, _ := c.shard("a")
	b, _ := c.shard("b")
	lb := quicStreams(t, 4)
	c.send(shardUp{shard: a, slot: 0, conn: lb.conn}, shardUp{shard: b, slot: 1, conn: lb.conn})
	c.handshaken(a, lb, 0) // the control stream: no share taken
	c.handshaken(a, lb, 1)
	c.handshaken(a, lb, 2)
	require.Equal(t, 2, c.state().Idle)
	c.handshaken(a, lb, 3)
	require.Equal(t, 1, c.state().Opening, "a's third stream is held")

	lb2 := quicStreams(t, 1)
	c.handshaken(b, lb2, 0)
	s := c.state()
	require.Equal(t, 3, s.Idle, "the pool has room for b")
	require.Equal(t, 1, s.Opening, "a is still at its share")

	c.send(shardDown{shard: b})
	s = c.state()
	require.Equal(t, 1, s.ShardsUp)
	require.Zero(t, s.Opening, "a's held stream is issued once b is down")
	require.Equal(t, 3, s.Idle, "b's stream is gone, a holds three")
	require.NotEmpty(t, issuedID(t, lb, 3))
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
	s = c.accounted("after a stream came from a shard that is down")
	require.Equal(t, uint64(1), s.Discarded, "a stream of a shard that is down is discarded")
	require.Equal(t, uint64(2), s.Lost, "a's two idle streams")
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

// A client that holds plenty of idle streams (at least half its capacity, and replaceBatch)
// replaces taken streams replaceBatch at a time, so that their opens and IDs share packets.
func TestClientReplacesTakenStreamsInBatches(t *testing.T) {
	const capacity = 16
	c, asked := filledClient(t, capacity, time.Hour)
	for taken := 1; taken < replaceBatch; taken++ {
		require.NoError(t, recv(t, c.get(""), "a stream").Err)
		require.Empty(t, asked, "%d taken of %d idle: the replacements wait for a batch", taken, capacity)
	}
	require.NoError(t, recv(t, c.get(""), "a stream").Err)
	require.Equal(t, openStreams{n: replaceBatch}, recv(t, asked, "the batch's openStreams"))
	require.Equal(t, replaceBatch, c.state().Opening)
}

// A batch of replacements goes whole to the least loaded connection, so that its opens and IDs
// share that connection's packets, even if it goes above its share; the next batch goes to the
// other, and the load evens out. A fill is still spread, every connection opening its share.
// (The capacity is half of MaxCap: a batch may go above the connection's share of the capacity,
// not above its share of MaxCap, which a server serving this client alone gives it.)
func TestClientOpensABatchOnOneConnection(t *testing.T) {
	const share = 2 * replaceBatch
	c := startCoordinatorRT(t, true, func(cfg *core.Config) { cfg.MinCap, cfg.MaxCap, cfg.Shards = 2*share, 4*share, 2 },
		func(rt *runtime) { rt.batchWait = time.Hour })
	tc := c.startTwoConns(2*share+2*replaceBatch, share)
	a, b, askedA, askedB, lb := tc.a, tc.b, tc.askedA, tc.askedB, tc.lb
	// lb.streams[filed] is the next stream to file, under testID(filed)
	filed := 0
	file := func(shard *actor.PID, n int) {
		for range n {
			c.send(streamReady{shard: shard, id: testID(filed), stream: lb.streams[filed]})
			filed++
		}
	}
	takeBatch := func(fromA, fromB int) { // half a batch from each connection's oldest streams
		for i := range replaceBatch / 2 {
			for _, first := range []int{fromA, fromB} {
				require.NoError(t, recv(t, c.get(testID(first+i)), "a stream").Err)
			}
		}
	}
	file(a, share) // testID(0) to testID(share-1)
	file(b, share) // testID(share) to testID(2*share-1)
	require.Equal(t, 2*share, c.state().Idle)

	takeBatch(0, share) // a and b each hold share-4
	require.Equal(t, openStreams{n: replaceBatch}, recv(t, askedA, "the batch, to the first of equals"))
	require.Empty(t, c.recorded(b, askedB), "the batch is not spread")
	file(a, replaceBatch) // a holds share+4, b share-4

	takeBatch(replaceBatch/2, share+replaceBatch/2) // a holds share, b share-8
	require.Equal(t, openStreams{n: replaceBatch}, recv(t, askedB, "the next batch, to the least loaded"))
	require.Empty(t, c.recorded(a, askedA), "a holds its share")
	file(b, replaceBatch)
	s := c.state()
	require.Equal(t, 2*share, s.Idle)
	require.Zero(t, s.Opening)
}

// Replacements that waited for a batch and are asked for when its wait ends (replaceDue) go
// whole to one connection too; a batch that would take a connection above its share of MaxCap
// is spread.
func TestClientOpensAWaitedBatchOnOneConnection(t *testing.T) {
	for _, c := range []struct {
		name     string
		maxCap   int
		wantA    openStreams
		wantB    []any
		opensFor string
	}{
		{"within its share of maxCap", 64, openStreams{n: 3}, nil, "the batch, whole"},
		{"above its share of maxCap", 32, openStreams{n: 2}, []any{openStreams{n: 1}}, "the batch, spread"},
	} {
		t.Run(c.name, func(t *testing.T) {
			const share = 16 // of the capacity, 32
			co := startCoordinatorRT(t, true, func(cfg *core.Config) { cfg.MinCap, cfg.MaxCap, cfg.Shards = 2*share, c.maxCap, 2 },
				func(rt *runtime) { rt.batchWait = time.Hour })
			tc := co.startTwoConns(2*share, share)
			a, b, askedA, askedB, lb := tc.a, tc.b, tc.askedA, tc.askedB, tc.lb
			for i, stream := range lb.streams {
				shard := a
				if i >= share {
					shard = b
				}
				co.send(streamReady{shard: shard, id: testID(i), stream: stream})
			}
			for _, i := range []int{0, 1, share} { // two from a, one from b: they wait for a batch
				require.NoError(t, recv(t, co.get(testID(i)), "a stream").Err)
			}
			require.Empty(t, co.recorded(a, askedA), "waiting for a batch")
			co.send(replaceDue{batch: 1}) // as the batch's timer does
			require.Equal(t, c.wantA, recv(t, askedA, c.opensFor))
			require.Equal(t, c.wantB, co.recorded(b, askedB))
		})
	}
}

// A client that runs low (fewer than half its capacity, or replaceBatch, idle) replaces each
// taken stream at once, unless replaceBatch opens are under way, more than its callers waiting
// for any stream: those get the streams under way, and the replacements go out replaceBatch at a
// time again; once fewer than replaceBatch are under way (they came), what waits is asked for
// at once. A pool drained as fast as it fills (a burst) so shares its packets instead of opening
// one stream a take, and its refill's last streams wait for nothing.
func TestClientRunningLowBatchesOnlyBehindABatchUnderWay(t *testing.T) {
	t.Run("nothing under way", func(t *testing.T) {
		c, asked := filledClient(t, replaceBatch, time.Hour)
		require.NoError(t, recv(t, c.get(""), "a stream").Err) // 7 idle: fewer than replaceBatch
		require.Equal(t, openStreams{n: 1}, recv(t, asked, "the replacement of a pool running low"))
		require.Equal(t, 1, c.state().Opening)
	})
	t.Run("a batch under way", func(t *testing.T) {
		const capacity = 2 * replaceBatch
		c, asked := filledClient(t, capacity, time.Hour)
		drainThroughTwoBatches(t, c, asked, capacity)
		require.Equal(t, capacity, c.state().Opening)
	})
	t.Run("as many callers waiting for any stream as opens under way", func(t *testing.T) {
		const capacity = 2 * replaceBatch
		c, shard, asked, lb := filledClientWithSpares(t, capacity, 1, time.Hour)
		drainThroughTwoBatches(t, c, asked, capacity)
		waiting := make([]chan messages.Stream, capacity)
		for i := range waiting {
			waiting[i] = c.get("")
		}
		c.send(streamReady{shard: shard, id: "00000fff", stream: lb.streams[capacity]})
		require.NoError(t, recv(t, waiting[0], "the first caller's stream").Err)
		require.Equal(t, openStreams{n: 1}, recv(t, asked, "the replacement, asked for at once"),
			"%d under way and as many callers waiting: the replacement waits for no batch", capacity-1)
	})
	t.Run("the batch under way came", func(t *testing.T) {
		const capacity = 2 * replaceBatch
		c, shard, asked, lb := filledClientWithSpares(t, capacity, 1, time.Hour)
		for range 2*replaceBatch - 1 {
			require.NoError(t, recv(t, c.get(""), "a stream").Err)
		}
		require.Equal(t, openStreams{n: replaceBatch}, recv(t, asked, "the first batch's openStreams"))
		c.state()
		require.Empty(t, asked, "1 idle, %d under way: the next %d wait for a batch", replaceBatch, replaceBatch-1)
		c.send(streamReady{shard: shard, id: "00000fff", stream: lb.streams[capacity]})
		require.Equal(t, openStreams{n: replaceBatch - 1}, recv(t, asked, "the waiting replacements"),
			"fewer than a batch under way and 2 idle: the replacements wait no longer")
	})
}

// drainThroughTwoBatches takes every idle stream of a filled client of capacity 2 x replaceBatch:
// the first replaceBatch taken are asked for as one batch; the pool then runs low with that batch
// under way, and the next ones wait for a batch too, asked for when the last idle stream goes.
func drainThroughTwoBatches(t *testing.T, c *coordTest, asked chan any, capacity int) {
	t.Helper()
	for range replaceBatch {
		require.NoError(t, recv(t, c.get(""), "a stream").Err)
	}
	require.Equal(t, openStreams{n: replaceBatch}, recv(t, asked, "the first batch's openStreams"))
	for idle := capacity - replaceBatch - 1; idle > 0; idle-- {
		require.NoError(t, recv(t, c.get(""), "a stream").Err)
		c.state()
		require.Empty(t, asked, "%d idle, %d under way: the replacements wait for a batch", idle, replaceBatch)
	}
	require.NoError(t, recv(t, c.get(""), "the last idle stream").Err)
	require.Equal(t, openStreams{n: replaceBatch}, recv(t, asked, "the second batch's openStreams"))
}

// A WaitReady does not wait for a batch: the streams it waits for are asked for at once.
func TestWaitReadyDoesNotWaitForABatch(t *testing.T) {
	const capacity = 16
	c, asked := filledClient(t, capacity, time.Hour)
	for range 3 {
		require.NoError(t, recv(t, c.get(""), "a stream").Err)
	}
	require.Zero(t, c.state().Opening, "3 taken: the replacements wait for a batch")
	require.Empty(t, asked)
	ready := make(chan error, 1)
	c.send(messages.WaitReady{N: capacity, Reply: ready})
	require.Equal(t, openStreams{n: 3}, recv(t, asked, "the 3 missing, asked for at once"))
}

// A replacement that waits for a batch is asked for after replaceDelay, whether or not the
// batch fills.
func TestClientReplacementWaitsForItsBatchAtMostReplaceDelay(t *testing.T) {
	const wait = 100 * time.Millisecond
	c, asked := filledClient(t, 16, wait)
	taken := time.Now()
	require.NoError(t, recv(t, c.get(""), "a stream").Err)
	require.Zero(t, c.state().Opening, "the replacement waits for its batch")
	require.Equal(t, openStreams{n: 1}, recv(t, asked, "the lone replacement, after the wait"))
	require.GreaterOrEqual(t, time.Since(taken), wait)
	require.Equal(t, 1, c.state().Opening)
}

// Only taken streams wait for a batch. The control stream takes no slot, so a fill that receives
// it last lacks one stream with the pool all but full: that one is asked for at once, whether the
// control stream is filed or goes straight to a caller waiting for it.
func TestFillDoesNotWaitForABatch(t *testing.T) {
	for _, waiting := range []bool{false, true} {
		t.Run(fmt.Sprintf("control stream awaited: %v", waiting), func(t *testing.T) {
			const capacity = 16
			c := startCoordinatorRT(t, true, func(cfg *core.Config) { cfg.MinCap, cfg.MaxCap = capacity, capacity },
				func(rt *runtime) { rt.batchWait = time.Hour })
			shard, asked := c.shard("shard")
			lb := quicStreams(t, capacity+1)
			c.send(core.Start{}, shardUp{shard: shard, conn: lb.conn})
			for opened := 0; opened < capacity; {
				opened += recv(t, asked, "the capacity's openStreams").(openStreams).n
			}
			var control chan messages.Stream
			if waiting {
				control = c.get(wire.ControlID)
			}
			for i := range capacity - 1 {
				c.send(streamReady{shard: shard, id: testID(i), stream: lb.streams[i]})
			}
			c.send(streamReady{shard: shard, id: wire.ControlID, stream: lb.streams[capacity-1]})
			require.Equal(t, openStreams{n: 1}, recv(t, asked, "the stream the control stream did not fill"))
			c.send(streamReady{shard: shard, id: "00000fff", stream: lb.streams[capacity]})
			st := c.state()
			require.Equal(t, capacity, st.Idle)
			if waiting {
				require.Equal(t, wire.ControlID, recv(t, control, "the control stream").ID)
			} else {
				require.True(t, st.Control)
			}
		})
	}
}

// filledClient starts a client coordinator of MinCap and MaxCap capacity with one shard, and
// files the capacity's streams. batchWait replaces replaceDelay when positive. It returns the
// channel of what the shard is asked.
func filledClient(t *testing.T, capacity int, batchWait time.Duration) (*coordTest, chan any) {
	t.Helper()
	c, _, asked, _ := filledClientWithSpares(t, capacity, 0, batchWait)
	return c, asked
}

// filledClientWithSpares is filledClient that also returns the shard and its loopback, which
// holds spares more streams than the capacity (lb.streams[capacity:]) for the test to file.
func filledClientWithSpares(t *testing.T, capacity, spares int, batchWait time.Duration) (*coordTest, *actor.PID, chan any, loopback) {
	t.Helper()
	c := startCoordinatorRT(t, true, func(cfg *core.Config) { cfg.MinCap, cfg.MaxCap = capacity, capacity },
		func(rt *runtime) { rt.batchWait = batchWait })
	shard, asked := c.shard("shard")
	lb := quicStreams(t, capacity+spares)
	c.send(core.Start{}, shardUp{shard: shard, conn: lb.conn})
	for opened := 0; opened < capacity; {
		opened += recv(t, asked, "the capacity's openStreams").(openStreams).n
	}
	for i, stream := range lb.streams[:capacity] {
		c.send(streamReady{shard: shard, id: testID(i), stream: stream})
	}
	require.Equal(t, capacity, c.state().Idle)
	return c, shard, asked, lb
}

// A client's WaitReady for more idle streams than its capacity raises the capacity to that many,
// and the streams are asked for at once: WaitReady(maxCap) on a pool at its minimum is met.
func TestWaitReadyRaisesAClientsCapacity(t *testing.T) {
	c, shard, asked, lb := minimumFilled(t, 8)
	require.Equal(t, 2, c.state().Capacity)

	ready := make(chan error, 1)
	c.send(messages.WaitReady{N: 8, Reply: ready})
	require.Equal(t, openStreams{n: 6}, recv(t, asked, "the openStreams for the rest"))
	require.Equal(t, 8, c.state().Capacity)
	for i := 2; i < 8; i++ {
		c.state() // every message before it handled
		require.Empty(t, ready, "only %d idle", i)
		c.send(streamReady{shard: shard, id: fmt.Sprintf("0000009%d", i), stream: lb.streams[i]})
	}
	require.NoError(t, recv(t, ready, "the WaitReady answer"))
}

// The capacity a WaitReady raised does not decay while the call waits, however many ticks pass
// before a connection is up.
func TestWaitReadyKeepsTheCapacityUntilMet(t *testing.T) {
	c := startCoordinator(t, true, func(cfg *core.Config) { cfg.MinCap, cfg.MaxCap = 2, 8 })
	ready := make(chan error, 1)
	c.send(core.Start{}, messages.WaitReady{N: 8, Reply: ready}, tick{}, tick{}, tick{})
	require.Equal(t, 8, c.state().Capacity, "no decay while the call waits for 8")

	shard, asked := c.shard("shard")
	c.send(shardUp{shard: shard, conn: quicStreams(t, 1).conn})
	require.Equal(t, openStreams{n: 8}, recv(t, asked, "the openStreams for all 8"))
}

// minimumFilled starts a client coordinator of MinCap 2 and MaxCap 8 with one shard, whose
// loopback has n streams, and files the first two (00000011 and 00000012) as the two streams it
// asks for first.
func minimumFilled(t *testing.T, n int) (*coordTest, *actor.PID, chan any, loopback) {
	t.Helper()
	c := startCoordinator(t, true, func(cfg *core.Config) { cfg.MinCap, cfg.MaxCap = 2, 8 })
	shard, asked := c.shard("shard")
	lb := quicStreams(t, n)
	c.send(core.Start{}, shardUp{shard: shard, conn: lb.conn})
	for opened := 0; opened < 2; {
		opened += recv(t, asked, "the minimum's openStreams").(openStreams).n
	}
	c.send(streamReady{shard: shard, id: "00000011", stream: lb.streams[0]},
		streamReady{shard: shard, id: "00000012", stream: lb.streams[1]})
	require.Equal(t, 2, c.state().Idle)
	return c, shard, asked, lb
}

// A hand-out that leaves a client without an idle stream sends its capacity to MaxCap at once,
// and the replacements asked for cover all of it: the demand may be on the server's side, where
// the client cannot see how much of it there is. A hand-out that leaves a stream idle does not.
func TestExhaustedClientRaisesCapacityToMaxCap(t *testing.T) {
	c, _, asked, _ := minimumFilled(t, 2)
	require.NoError(t, recv(t, c.get("00000011"), "the first stream").Err)
	s := c.state()
	require.Equal(t, 2, s.Capacity, "a stream is still idle: the capacity stays")
	require.Equal(t, openStreams{n: 1}, recv(t, asked, "the first replacement"))

	require.NoError(t, recv(t, c.get("00000012"), "the last idle stream").Err)
	s = c.state()
	require.Equal(t, 8, s.Capacity, "exhausted: the capacity goes to MaxCap")
	require.Equal(t, openStreams{n: 7}, recv(t, asked, "the rest of MaxCap, in one request"))
	require.Equal(t, 8, s.Opening, "every stream of MaxCap is on its way")
}

// Handing out a stream that was never usable (the control stream, or one the peer closed: both
// are taken by ID only) is no sign that callers want more streams than the pool holds: a client's
// capacity stays, even with no usable stream idle. Taking the last usable one raises it.
func TestHandingOutAnUnusableStreamIsNoExhaustion(t *testing.T) {
	c := startCoordinator(t, true, func(cfg *core.Config) { cfg.MinCap, cfg.MaxCap = 2, 8 })
	shard, _ := c.shard("shard")
	lb := quicStreams(t, 3)
	control := c.get(wire.ControlID)
	c.send(shardUp{shard: shard, conn: lb.conn}, streamReady{shard: shard, id: wire.ControlID, stream: lb.streams[0]})
	require.Same(t, lb.streams[0], recv(t, control, "the control stream").Stream)
	require.Equal(t, 2, c.state().Capacity, "the control stream takes no slot")

	c.send(streamReady{shard: shard, id: "000000e1", stream: lb.streams[1]})
	lb.peer[1].CancelRead(wire.StreamCodeClosed)
	c.waitState("the peer close to be seen", func(s messages.Stats) bool { return s.PeerClosed == 1 })
	require.Same(t, lb.streams[1], recv(t, c.get("000000e1"), "the peer-closed stream").Stream)
	require.Equal(t, 2, c.state().Capacity, "a peer-closed stream takes no slot")

	c.send(streamReady{shard: shard, id: "000000e2", stream: lb.streams[2]})
	require.Same(t, lb.streams[2], recv(t, c.get("000000e2"), "the last usable stream").Stream)
	require.Equal(t, 8, c.state().Capacity, "exhausted: the capacity goes to MaxCap")
}

// The first connection of a multi-connection client fills the pool to its capacity at once, not
// to its share while the others are still connecting: fill time is one connection's handshake.
func TestFirstConnectionFillsWhileOthersConnect(t *testing.T) {
	c := startCoordinator(t, true, func(cfg *core.Config) { cfg.MinCap, cfg.MaxCap, cfg.Shards = 64, 1024, 8 })
	shard, asked := c.shard("shard")
	lb := quicStreams(t, 1)
	c.send(core.Start{}, shardUp{shard: shard, conn: lb.conn})
	require.Equal(t, openStreams{n: 64}, recv(t, asked, "the first connection's openStreams"),
		"the share of one connection of 8 would be 8")
}

// The other slots dial at the first tick after the first connection has opened the pool's
// capacity (here 4; one connection of 8 may hold 128): a pool just filled serves its first
// callers, and its server files its last streams, without sharing the CPU with a handshake. The
// coordinator tells the supervisor then, once, and not before.
func TestOthersDialAtTheTickAfterTheFirstConnectionOpenedTheCapacity(t *testing.T) {
	c := startCoordinator(t, true, func(cfg *core.Config) { cfg.MinCap, cfg.MaxCap, cfg.Shards = 4, 1024, 8 })
	shard, _ := c.shard("shard")
	lb := quicStreams(t, 4)
	c.send(core.Start{}, shardUp{shard: shard, conn: lb.conn})
	for i := range 3 {
		c.send(streamReady{shard: shard, id: fmt.Sprintf("0000000%d", i+1), stream: lb.streams[i]})
	}
	c.send(tick{})
	require.Empty(t, c.supervisorGot(), "three streams of four: the others wait, ticks or not")
	c.send(streamReady{shard: shard, id: "00000004", stream: lb.streams[3]})
	require.Empty(t, c.supervisorGot(), "filled: the others wait for the next tick")
	c.send(tick{})
	require.Equal(t, []any{dialOthers{}}, c.supervisorGot())
	c.send(openFailed{shard: shard, err: errors.New("no"), n: 1}, tick{})
	require.Empty(t, c.supervisorGot(), "once")
}

// A first connection that has opened as many streams as one connection holds lets the others
// dial at once: the pool's capacity needs them.
func TestOthersDialAtOnceWhenTheFirstConnectionIsFull(t *testing.T) {
	c := startCoordinator(t, true, func(cfg *core.Config) {
		cfg.MinCap, cfg.MaxCap, cfg.Shards, cfg.PerShard = 8, 1024, 8, 3
	})
	shard, _ := c.shard("shard")
	lb := quicStreams(t, 3)
	c.send(core.Start{}, shardUp{shard: shard, conn: lb.conn})
	for i := range 2 {
		c.send(streamReady{shard: shard, id: fmt.Sprintf("0000000%d", i+1), stream: lb.streams[i]})
	}
	require.Empty(t, c.supervisorGot(), "two streams of the three one connection holds")
	c.send(streamReady{shard: shard, id: "00000003", stream: lb.streams[2]})
	require.Equal(t, []any{dialOthers{}}, c.supervisorGot(), "the first connection is full, no tick")
}

// Streams that go straight to waiting callers count towards what the first connection has opened
// (here, with MaxCap 2, as much as it may hold: the others dial at once), and a failed open
// before it lets the others dial too.
func TestOthersDialWhenCallersTakeTheStreamsOrAnOpenFails(t *testing.T) {
	c := startCoordinator(t, true, func(cfg *core.Config) { cfg.MinCap, cfg.MaxCap, cfg.Shards = 2, 2, 2 })
	shard, _ := c.shard("shard")
	lb := quicStreams(t, 2)
	c.send(core.Start{}, shardUp{shard: shard, conn: lb.conn})
	replies := make([]chan messages.Stream, 2)
	for i := range replies {
		replies[i] = make(chan messages.Stream, 1)
		c.send(messages.Get{Reply: replies[i]})
	}
	for i := range 2 {
		c.send(streamReady{shard: shard, id: fmt.Sprintf("0000000%d", i+1), stream: lb.streams[i]})
		recv(t, replies[i], "a waiting caller's stream")
	}
	require.Equal(t, []any{dialOthers{}}, c.supervisorGot(), "two streams opened, both taken at once")

	c2 := startCoordinator(t, true, func(cfg *core.Config) { cfg.MinCap, cfg.MaxCap, cfg.Shards = 2, 1024, 8 })
	shard2, _ := c2.shard("shard")
	c2.send(core.Start{}, shardUp{shard: shard2, conn: lb.conn}, openFailed{shard: shard2, err: errors.New("no"), n: 1})
	require.Equal(t, []any{dialOthers{}}, c2.supervisorGot(), "the first connection cannot fill the pool")
}

// twoConns is a client coordinator's two connections, a and b, with what each was asked, on one
// loopback.
type twoConns struct {
	a, b           *actor.PID
	askedA, askedB chan any
	lb             loopback
}

// startTwoConns brings up connections a and b of the client coordinator c on a loopback of n
// streams, starts c, and checks that each is asked for its share of the fill.
func (c *coordTest) startTwoConns(n, share int) twoConns {
	c.t.Helper()
	var tc twoConns
	tc.a, tc.askedA = c.shard("a")
	tc.b, tc.askedB = c.shard("b")
	tc.lb = quicStreams(c.t, n)
	c.send(shardUp{shard: tc.a, slot: 0, conn: tc.lb.conn}, shardUp{shard: tc.b, slot: 1, conn: tc.lb.conn}, core.Start{})
	require.Equal(c.t, openStreams{n: share}, recv(c.t, tc.askedA, "a's share of the fill"))
	require.Equal(c.t, openStreams{n: share}, recv(c.t, tc.askedB, "b's share of the fill"))
	return tc
}

// supervisorGot returns what the coordinator has sent the supervisor since the last call, once
// the coordinator has handled every message sent before and the recorder has passed on all it
// got.
func (c *coordTest) supervisorGot() []any {
	c.t.Helper()
	return c.recorded(c.supPID, c.sup)
}

// recorded returns what the recorder pid (its channel ch) got since the last read of ch, once
// the coordinator has handled every message sent before and the recorder has passed on all it
// got.
func (c *coordTest) recorded(pid *actor.PID, ch chan any) []any {
	c.t.Helper()
	c.state()
	type marker struct{}
	c.engine.Send(pid, marker{})
	var got []any
	for {
		m := recv(c.t, ch, "the recorder's marker")
		if _, ok := m.(marker); ok {
			return got
		}
		got = append(got, m)
	}
}

// When a connection goes silent, the live ones make up for its streams at once, beyond their
// share: a silent connection counts as down for the refill, its idle streams and its opens under
// way alike (an open may wait for its answer up to the handshake timeout).
func TestLiveConnectionsMakeUpForASilentOne(t *testing.T) {
	for _, c := range []struct {
		name     string
		aArrived bool // a's streams are idle, not still being opened
	}{{"its streams idle", true}, {"its streams still opening", false}} {
		t.Run(c.name, func(t *testing.T) {
			co := startCoordinator(t, true, func(cfg *core.Config) { cfg.MinCap, cfg.MaxCap, cfg.Shards = 8, 16, 2 })
			tc := co.startTwoConns(8, 4)
			a, b, askedB, lb := tc.a, tc.b, tc.askedB, tc.lb
			for i := range 4 {
				if c.aArrived {
					co.send(streamReady{shard: a, id: fmt.Sprintf("000000a%d", i), stream: lb.streams[i]})
				}
				co.send(streamReady{shard: b, id: fmt.Sprintf("000000b%d", i), stream: lb.streams[4+i]})
			}
			s := co.state()
			if c.aArrived {
				require.Equal(t, 8, s.Idle)
				require.Zero(t, s.Opening)
			} else {
				require.Equal(t, 4, s.Idle)
				require.Equal(t, 4, s.Opening, "a's streams are on their way")
			}
			require.Empty(t, askedB, "b holds its share (4): nothing asked of it")

			co.send(liveness{shard: a, slot: 0, suspect: true, heard: time.Now()})
			require.Equal(t, openStreams{n: 4}, recv(t, askedB, "b making up for a's streams"),
				"b's share is 4, but a is silent: b opens what the pool lacks")
		})
	}
}

// twoIdle files two idle streams on one shard of c, first then second, and returns their
// loopback.
func (c *coordTest) twoIdle(first, second string) loopback {
	c.t.Helper()
	shard, _ := c.shard("shard")
	lb := quicStreams(c.t, 2)
	c.send(shardUp{shard: shard, conn: lb.conn},
		streamReady{shard: shard, id: first, stream: lb.streams[0]},
		streamReady{shard: shard, id: second, stream: lb.streams[1]})
	require.Equal(c.t, 2, c.state().Idle)
	return lb
}

// Idle streams that end because their connection ends, found before the connection's shardDown
// comes (checkPeers), go without a reset and are counted in Lost.
func TestStreamsEndedWithTheirConnectionAreLost(t *testing.T) {
	c := startCoordinator(t, true, nil)
	lb := c.twoIdle("00000081", "00000082")
	require.NoError(t, lb.conn.CloseWithError(0, "test: the connection ends"))
	waitDone(t, lb.streams[1].Context(), "the streams to end with their connection")
	c.send(checkPeers{})
	s := c.accounted("after the streams ended")
	require.Equal(t, uint64(2), s.Lost)
	require.Zero(t, s.Discarded, "nothing was reset")
	require.Zero(t, s.Idle)
}

// peerDiscardsFirst files two idle streams on one shard of c, first then second, and has the
// peer's pool discard first (STOP_SENDING with wire.StreamCodeDiscarded); it returns once this
// side's stream has seen it.
func (c *coordTest) peerDiscardsFirst(first, second string) {
	c.t.Helper()
	lb := c.twoIdle(first, second)
	lb.peer[0].CancelRead(wire.StreamCodeDiscarded)
	waitDone(c.t, lb.streams[0].Context(), "the peer's STOP_SENDING to arrive")
}

// A stream the peer's application closed (STOP_SENDING with code 0) before it was taken stops
// counting as idle but is still handed out by its ID.
func TestPeerClosedStreamStaysReachableByID(t *testing.T) {
	c := startCoordinator(t, false, nil)
	lb := c.twoIdle("00000021", "00000022")

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

// A caller that takes any stream never gets one the peer stopped reading, even in the moment
// before the periodic check (every peerCheckInterval) has seen it: the hand-out looks first.
func TestPeerStoppedStreamIsNeverHandedOut(t *testing.T) {
	c := startCoordinator(t, false, nil)
	c.peerDiscardsFirst("00000041", "00000042")
	got := recv(t, c.get(""), "any stream")
	require.NoError(t, got.Err)
	require.Equal(t, "00000042", got.ID, "the oldest stream is dead: the next one is handed out")
	s := c.state()
	require.Equal(t, uint64(1), s.Discarded, "the dead stream is discarded and counted on the way")
	require.Zero(t, s.Idle)
}

// A stream the peer's pool discarded (STOP_SENDING with wire.StreamCodeDiscarded) is gone once seen:
// counted as discarded, and a Get for its ID fails with ErrStreamGone.
func TestPeerDiscardedStreamIsGone(t *testing.T) {
	c := startCoordinator(t, false, nil)
	lb := c.twoIdle("00000031", "00000032")

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

// A forged actor.Stopped is dropped by the sealed receiver: the coordinator keeps
// answering and does not close Stopped.
func TestCoordinatorIgnoresForgedStopped(t *testing.T) {
	c := startCoordinator(t, false, nil)
	c.send(actor.Stopped{}, actor.Started{}, actor.Initialized{}, messages.AddError{})
	s := c.state()
	require.Equal(t, 1, s.Errors, "the coordinator kept handling messages")
	require.False(t, s.Closed)
	require.False(t, core.IsClosed(c.cfg.Stopped), "a forged Stopped does not stop the pool")
}

// The control ID exists once, even when the connection it was issued on dies at once: B's
// streams never get it again.
func TestControlIDIssuedOnceThroughAConnectionRace(t *testing.T) {
	c := startCoordinator(t, false, nil)
	a, _ := c.shard("a")
	b, _ := c.shard("b")
	lb := quicStreams(t, 4)
	c.send(shardUp{shard: a, slot: 0, conn: lb.conn}, shardUp{shard: b, slot: 1, conn: lb.conn})
	c.handshaken(a, lb, 0)
	c.send(shardDown{shard: a})
	for i := 1; i < 4; i++ {
		c.handshaken(b, lb, i)
	}
	require.Equal(t, wire.ControlID, issuedID(t, lb, 0))
	for i := 1; i < 4; i++ {
		require.NotEqual(t, wire.ControlID, issuedID(t, lb, i), "the control ID is issued once")
	}
	s := c.state()
	require.False(t, s.Control, "A's control stream died with A")
	require.Equal(t, 3, s.Idle)
}

// A Get by ID looks at its stream before handing it out: a stream the peer discarded a moment
// ago, before the periodic check (every peerCheckInterval) has seen it, fails with ErrStreamGone
// and is counted, instead of reaching the caller dead.
func TestGetByIDLooksAtItsStreamFirst(t *testing.T) {
	c := startCoordinator(t, false, nil)
	c.peerDiscardsFirst("00000051", "00000052")
	got := recv(t, c.get("00000051"), "the answer for the discarded ID")
	require.ErrorIs(t, got.Err, core.ErrStreamGone)
	require.Nil(t, got.Stream)
	s := c.state()
	require.Equal(t, uint64(1), s.Discarded)
	require.Equal(t, 1, s.Idle)
	require.Zero(t, s.HandedOut)
}

// A caller waiting by ID for a stream of a silent connection is served when the connection
// answers again, but not with a stream the peer discarded meanwhile: that fails with
// ErrStreamGone.
func TestWaiterOnSilentConnectionGetsNoDiscardedStream(t *testing.T) {
	c := startCoordinator(t, false, nil)
	shard, _ := c.shard("shard")
	lb := quicStreams(t, 2)
	c.send(shardUp{shard: shard, conn: lb.conn},
		streamReady{shard: shard, id: "00000061", stream: lb.streams[0]},
		streamReady{shard: shard, id: "00000062", stream: lb.streams[1]},
		liveness{shard: shard, suspect: true, heard: time.Now()})
	discarded, kept := c.get("00000061"), c.get("00000062")
	s := c.accounted("while the connection is silent")
	require.Equal(t, 2, s.Waiters, "both wait for the silent connection")
	require.Equal(t, 2, s.Withheld, "its streams are withheld")
	require.Zero(t, s.Idle)

	lb.peer[0].CancelRead(wire.StreamCodeDiscarded)
	waitDone(t, lb.streams[0].Context(), "the peer's STOP_SENDING to arrive")
	c.send(liveness{shard: shard, suspect: false, heard: time.Now()})
	got := recv(t, discarded, "the answer for the discarded stream")
	require.ErrorIs(t, got.Err, core.ErrStreamGone)
	require.Nil(t, got.Stream)
	got = recv(t, kept, "the other stream")
	require.NoError(t, got.Err)
	require.Same(t, lb.streams[1], got.Stream)
	s = c.accounted("after the connection answered")
	require.Equal(t, uint64(1), s.Discarded)
	require.Equal(t, uint64(1), s.HandedOut)
	require.Zero(t, s.Withheld)
}

// When a silent connection answers again, a stream its peer closed goes to a caller waiting for
// its ID, never to one that takes any (that one gets a usable stream), even when every caller
// waiting for the ID has gone; and a waiter whose reply cannot take the stream leaves it to the
// next one waiting for the ID.
func TestConnectionHeardAgainServesEachWaiterItsOwn(t *testing.T) {
	for _, c := range []struct {
		name string
		live bool // after the caller who gave up, one whose reply is closed once filed, and one who waits
	}{{"its ID's caller has gone", false}, {"its ID's first live caller cannot take it", true}} {
		t.Run(c.name, func(t *testing.T) {
			co := startCoordinator(t, false, nil)
			shard, _ := co.shard("shard")
			lb := quicStreams(t, 2)
			co.send(shardUp{shard: shard, conn: lb.conn},
				streamReady{shard: shard, id: "00000091", stream: lb.streams[0]},
				streamReady{shard: shard, id: "00000092", stream: lb.streams[1]})
			lb.peer[0].CancelRead(wire.StreamCodeClosed)
			co.waitState("the peer close to be seen", func(s messages.Stats) bool { return s.PeerClosed == 1 })
			co.send(liveness{shard: shard, suspect: true, heard: time.Now()})

			gaveUp := co.get("00000091")
			var byID, closed chan messages.Stream
			if c.live {
				closed = co.get("00000091")
				byID = co.get("00000091")
			}
			anyStream := co.get("")
			waiting := 2
			if c.live {
				waiting = 4
			}
			require.Equal(t, waiting, co.state().Waiters, "all wait for the silent connection")
			if c.live {
				close(closed) // filed already: only the hand-out finds it cannot take the stream
			}
			_, answered := messages.Abandon(gaveUp) // its caller gives up
			require.False(t, answered)

			co.send(liveness{shard: shard, suspect: false, heard: time.Now()})
			got := recv(t, anyStream, "a stream for the caller that takes any")
			require.Equal(t, "00000092", got.ID, "the usable stream, not the peer-closed one")
			if !c.live {
				require.Equal(t, 1, co.state().PeerClosed, "the peer-closed stream waits for a caller of its ID")
				return
			}
			got = recv(t, byID, "the peer-closed stream for the live caller of its ID")
			require.Same(t, lb.streams[0], got.Stream)
			s := co.state()
			require.Zero(t, s.PeerClosed)
			require.Equal(t, uint64(2), s.HandedOut)
		})
	}
}

// A caller waiting for an ID gets its stream, in the step it arrives, even if the peer closed the
// stream before it came (the server's application took it and closed it at once): peer-closed
// streams are handed out by ID. One the peer discarded fails its caller with ErrStreamGone, in the
// same step.
func TestStreamThatComesClosedReachesItsWaiter(t *testing.T) {
	for _, c := range []struct {
		name string
		code quic.StreamErrorCode
	}{{"closed", wire.StreamCodeClosed}, {"discarded", wire.StreamCodeDiscarded}} {
		t.Run(c.name, func(t *testing.T) {
			co := startCoordinator(t, true, nil)
			shard, _ := co.shard("shard")
			lb := quicStreams(t, 1)
			waiting := co.get("000000c1")
			require.Equal(t, 1, co.state().Waiters)
			lb.peer[0].CancelRead(c.code)
			waitDone(t, lb.streams[0].Context(), "the peer's STOP_SENDING to arrive")

			co.send(shardUp{shard: shard, conn: lb.conn}, streamReady{shard: shard, id: "000000c1", stream: lb.streams[0]})
			s := co.state()
			var got messages.Stream
			select {
			case got = <-waiting:
			default:
				t.Fatal("the waiting caller was not answered in the step its stream arrived")
			}
			require.Zero(t, s.Idle, "a stream the peer stopped reading is never idle")
			if c.code == wire.StreamCodeDiscarded {
				require.ErrorIs(t, got.Err, core.ErrStreamGone)
				require.Equal(t, uint64(1), s.Discarded)
				return
			}
			require.NoError(t, got.Err)
			require.Same(t, lb.streams[0], got.Stream)
			require.Zero(t, s.PeerClosed)
			require.Equal(t, uint64(1), s.HandedOut)
		})
	}
}

// A stream refused because its server broke the protocol with it (an ID already idle on the same
// connection, the control stream twice) is closed both ways and counted as discarded, like every
// stream the pool drops.
func TestStreamRefusedForAViolationIsCounted(t *testing.T) {
	for _, id := range []string{"000000d1", wire.ControlID} {
		t.Run(id, func(t *testing.T) {
			c := startCoordinator(t, true, nil)
			shard, _ := c.shard("shard")
			lb := quicStreams(t, 2)
			c.send(shardUp{shard: shard, conn: lb.conn},
				streamReady{shard: shard, id: id, stream: lb.streams[0]})
			if id == wire.ControlID { // taken, so that the second is no duplicate of an idle one
				require.Same(t, lb.streams[0], recv(t, c.get(id), "the control stream").Stream)
			}
			c.send(streamReady{shard: shard, id: id, stream: lb.streams[1]})
			s := c.accounted("after the refused stream")
			require.Equal(t, uint64(1), s.Violations)
			require.Equal(t, uint64(1), s.Discarded, "the refused stream is counted")
			waitDone(t, lb.peer[1].Context(), "the refused stream's reset to reach the peer")
		})
	}
}

// A connection closed for a protocol violation is forgotten at once, not when its shardDown
// comes: while it closes, none of its idle streams is handed out (a Get by ID fails with
// ErrStreamGone, a Get for any gets the other connection's) and no stream is asked of it; the
// other connection makes up for its streams.
func TestViolatedConnectionServesNothingWhileItCloses(t *testing.T) {
	c := startCoordinator(t, true, func(cfg *core.Config) { cfg.MinCap, cfg.MaxCap, cfg.Shards = 4, 4, 2 })
	tc := c.startTwoConns(5, 2)
	a, b, askedA, askedB, lb := tc.a, tc.b, tc.askedA, tc.askedB, tc.lb
	c.send(streamReady{shard: a, id: "000000a1", stream: lb.streams[0]},
		streamReady{shard: a, id: "000000a2", stream: lb.streams[1]},
		streamReady{shard: b, id: "000000b1", stream: lb.streams[2]},
		streamReady{shard: b, id: "000000b2", stream: lb.streams[3]})
	require.Equal(t, 4, c.state().Idle)

	c.send(streamReady{shard: a, id: "000000a1", stream: lb.streams[4]}) // the same ID twice
	told, ok := recv(t, askedA, "a's message").(violation)
	require.True(t, ok, "a is told to close its connection")
	require.ErrorIs(t, told.err, core.ErrViolation)
	require.Equal(t, openStreams{n: 2}, recv(t, askedB, "b makes up for a's streams"))
	s := c.state()
	require.Equal(t, uint64(1), s.Violations)
	require.Equal(t, 1, s.ShardsUp, "a is forgotten before its shardDown")
	require.Equal(t, 2, s.Idle, "b's two")
	require.ErrorIs(t, recv(t, c.get("000000a2"), "a Get by ID").Err, core.ErrStreamGone)
	for range 2 { // a Get for any finds b's streams only
		got := recv(t, c.get(""), "a Get for any")
		require.NoError(t, got.Err)
		require.Contains(t, []string{"000000b1", "000000b2"}, got.ID)
	}
	require.Empty(t, c.recorded(a, askedA), "no stream is asked of a closing connection")
	require.Equal(t, uint64(2), c.accounted("after the violation").Lost, "a's two idle streams")

	c.send(shardDown{shard: a, err: core.ErrViolation})
	s = c.accounted("after a's shardDown")
	require.Equal(t, uint64(1), s.Restarts, "counted once, at its shardDown")
	require.Equal(t, uint64(1), s.Discarded, "the refused stream alone: the idle ones end with their connection")
}

// A peer-closed stream whose hand-out by ID fails (the reply cannot take it) goes back as it was:
// still peer-closed, not counted as idle, not handed to a caller that takes any.
func TestFailedHandOutKeepsAPeerClosedStreamPeerClosed(t *testing.T) {
	c := startCoordinator(t, false, nil)
	lb := c.twoIdle("00000071", "00000072")

	lb.peer[0].CancelRead(wire.StreamCodeClosed)
	c.waitState("the peer close to be seen", func(s messages.Stats) bool { return s.PeerClosed == 1 })
	full := make(chan messages.Stream, 1)
	full <- messages.Stream{}
	c.send(messages.Get{ID: "00000071", Reply: full})
	s := c.state()
	require.Equal(t, 1, s.PeerClosed, "still peer-closed")
	require.Equal(t, 1, s.Idle, "a peer-closed stream is not idle")
	require.Zero(t, s.HandedOut)
	got := recv(t, c.get(""), "any stream")
	require.Equal(t, "00000072", got.ID)
	none := make(chan messages.Stream, 1)
	c.send(messages.Get{Reply: none, NoWait: true})
	require.ErrorIs(t, recv(t, none, "the NoWait answer").Err, core.ErrTimeout,
		"the peer-closed stream is not handed to a caller that takes any")
	got = recv(t, c.get("00000071"), "the peer-closed stream by ID")
	require.Same(t, lb.streams[0], got.Stream)
}

// When a client pool starts failing calls at once, the calls already waiting fail at once too,
// with ErrUnavailable wrapping the failure.
func TestFailFastFailsTheWaitingCalls(t *testing.T) {
	c := startCoordinator(t, true, nil)
	shard, _ := c.shard("shard")
	waiting := c.get("")
	require.Equal(t, 1, c.state().Waiters)
	errCert := errors.New("certificate signed by unknown authority")
	c.send(shardDown{shard: shard, err: errCert, failFast: true})
	got := recv(t, waiting, "the waiting call's answer")
	require.ErrorIs(t, got.Err, core.ErrUnavailable)
	require.ErrorIs(t, got.Err, errCert)
	s := c.state()
	require.Zero(t, s.Waiters)
	require.True(t, s.FailFast)
}

// A peer-closed stream is discarded when its grace period ends, whatever the refill interval:
// the check runs with checkPeers (every peerCheckInterval), not on the pool's tick, which this
// coordinator never starts. Until then it is kept.
func TestPeerClosedStreamGoesAfterItsGrace(t *testing.T) {
	const grace = time.Second
	c := startCoordinator(t, false, func(cfg *core.Config) { cfg.PeerClosedGrace = grace })
	lb := c.twoIdle("00000081", "00000082")

	lb.peer[0].CancelRead(wire.StreamCodeClosed)
	seen := c.waitState("the peer close to be seen", func(s messages.Stats) bool { return s.PeerClosed == 1 })
	require.Zero(t, seen.Discarded, "kept for its grace")
	s := c.waitState("the grace to end", func(s messages.Stats) bool { return s.Discarded == 1 })
	require.Zero(t, s.PeerClosed)
	require.Equal(t, 1, s.Idle, "the other stream stays")
	got := recv(t, c.get("00000081"), "the answer for the expired ID")
	require.ErrorIs(t, got.Err, core.ErrStreamGone)
}

// A client tunes as NodePass does, once per tick: more than 80% of the capacity idle lengthens
// the interval by 100ms, less than 20% shortens it, within [MinIvl, MaxIvl]; streams created in
// the tick above 80% of the capacity raise it by one, below 20% lower it by one, within [MinCap,
// MaxCap]. A hand-out that empties the pool sends the capacity to MaxCap, and it decays from
// there.
func TestClientTunesIntervalAndCapacity(t *testing.T) {
	const base = time.Hour // no tick of its own comes during the test
	c := startCoordinator(t, true, func(cfg *core.Config) {
		cfg.MinCap, cfg.MaxCap, cfg.MinIvl, cfg.MaxIvl = 2, 4, base, base+2*intervalStep
	})
	shard, _ := c.shard("shard")
	lb := quicStreams(t, 2)
	c.send(core.Start{}, shardUp{shard: shard, conn: lb.conn}) // Start runs the first tick
	tuned := func(what string, capacity int, interval time.Duration) {
		t.Helper()
		c.send(tick{})
		s := c.state()
		require.Equal(t, capacity, s.Capacity, "capacity %s", what)
		require.Equal(t, interval, s.Interval, "interval %s", what)
	}
	require.Equal(t, 2, c.state().Capacity)
	require.Equal(t, base, c.state().Interval)

	c.send(streamReady{shard: shard, id: "000000e1", stream: lb.streams[0]},
		streamReady{shard: shard, id: "000000e2", stream: lb.streams[1]})
	tuned("after 2 created of 2, 2 idle", 3, base+intervalStep)
	tuned("after none created, 2 idle of 3", 2, base+intervalStep)
	tuned("at MinCap, 2 idle of 2", 2, base+2*intervalStep)
	tuned("at MaxIvl", 2, base+2*intervalStep)

	for range 2 {
		require.NoError(t, recv(t, c.get(""), "a stream").Err)
	}
	require.Equal(t, 4, c.state().Capacity, "the pool ran dry: MaxCap at once")
	tuned("none idle", 3, base+intervalStep)
	tuned("none idle again", 2, base)
	tuned("at MinCap and MinIvl", 2, base)
}

// A stream held for want of room is refused once it has waited HoldTimeout: reset both ways
// (its client sees the reset) and counted as failed. One that has not waited that long stays.
func TestHeldStreamIsRefusedAfterHoldTimeout(t *testing.T) {
	// Longer than a stall between two messages, even on a loaded machine. MaxCap is 4: the
	// control stream, 4 idle, 1 held.
	const hold = time.Second
	c := startCoordinator(t, false, func(cfg *core.Config) { cfg.HoldTimeout = hold })
	lb := c.handshakenOnOneShard(7, 6)
	s := c.state()
	require.Equal(t, 1, s.Opening)
	heldSince, failedBefore := time.Now(), s.Failed
	c.send(tick{}) // it also arms the server's own tick, a second later
	require.Equal(t, 1, c.state().Opening, "not held for %v yet", hold)

	<-time.After(time.Until(heldSince.Add(hold))) // the hold ends: the next tick refuses it
	c.handshaken(c.onlyShard, lb, 6)              // a second held stream, younger
	c.send(tick{})
	s = c.state()
	require.Equal(t, 1, s.Opening, "the younger one stays held")
	require.Equal(t, failedBefore+1, s.Failed, "the refused stream is counted")
	waitDone(t, lb.streams[5].Context(), "the client to see its held stream reset")
	require.NoError(t, lb.streams[6].Context().Err(), "the younger stream is not reset")
}

// When a second connection arrives, a server takes back the first's idle streams beyond the new
// fair share (MaxCap over the connections up), oldest first: reset both ways, so its client
// sees them go, counted in Discarded and Reclaimed, and gone by ID.
func TestServerReclaimsBeyondTheFairShare(t *testing.T) {
	c := startCoordinator(t, false, nil) // MaxCap 4
	a, _ := c.shard("a")
	b, _ := c.shard("b")
	lb := quicStreams(t, 5)
	c.send(shardUp{shard: a, slot: 0, conn: lb.conn})
	for i := range 5 { // the control stream, then 4 idle
		c.handshaken(a, lb, i)
	}
	ids := make([]string, 5)
	for i := range ids {
		ids[i] = issuedID(t, lb, i)
	}
	require.Equal(t, 4, c.state().Idle)

	c.send(shardUp{shard: b, slot: 1, conn: lb.conn}, tick{})
	s := c.state()
	require.Equal(t, 2, s.Idle, "a keeps its new share, 2")
	require.Equal(t, uint64(2), s.Reclaimed)
	require.Equal(t, uint64(2), s.Discarded)
	for _, i := range []int{1, 2} { // the oldest two after the control stream
		waitDone(t, lb.streams[i].Context(), "the client to see a reclaimed stream reset")
		got := recv(t, c.get(ids[i]), "the answer for a reclaimed ID")
		require.ErrorIs(t, got.Err, core.ErrStreamGone)
	}
	for _, i := range []int{3, 4} {
		require.NoError(t, lb.streams[i].Context().Err(), "stream %d is kept", i)
	}
}

// A connection may have its share plus heldMargin streams held without an ID; a stream beyond
// that is refused at once (reset both ways, counted as failed), not held.
func TestStreamsBeyondTheHeldMarginAreRefused(t *testing.T) {
	const streams = 1 + 4 + 4 + heldMargin + 1 // the control stream, MaxCap 4 idle, share and margin held, one more
	c := startCoordinator(t, false, nil)
	lb := c.handshakenOnOneShard(streams, streams-1)
	s := c.state()
	require.Equal(t, 4, s.Idle)
	require.Equal(t, 4+heldMargin, s.Opening, "the share (4) and the margin held")
	failedBefore := s.Failed

	c.handshaken(c.onlyShard, lb, streams-1)
	s = c.state()
	require.Equal(t, 4+heldMargin, s.Opening, "nothing more held")
	require.Equal(t, failedBefore+1, s.Failed, "the refused stream is counted")
	waitDone(t, lb.streams[streams-1].Context(), "the client to see the refused stream reset")
}

// A tick that panics (here on a broken invariant: a nil stream held for room) still schedules
// the next one, which finishes the work.
func TestTickThatPanicsSchedulesTheNext(t *testing.T) {
	// MaxCap 4: the control stream and 4 idle, then the next streams are held, their hold over.
	c := startCoordinator(t, false, func(cfg *core.Config) { cfg.HoldTimeout = time.Nanosecond })
	lb := c.handshakenOnOneShard(6, 5)
	c.send(handshaken{shard: c.onlyShard, streams: []*quic.Stream{nil}})
	c.handshaken(c.onlyShard, lb, 5)
	require.Equal(t, 2, c.state().Opening, "both held")
	c.send(tick{}) // refusing the nil stream panics
	require.Equal(t, 1, c.state().Opening, "the tick panicked before it refused the second")
	c.waitState("the next tick to refuse it", func(s messages.Stats) bool { return s.Opening == 0 })
	waitDone(t, lb.streams[5].Context(), "the client to see its held stream reset")
}
