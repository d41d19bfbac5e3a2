package actors

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quicpool/quicpool/messages"
	"github.com/stretchr/testify/require"
)

// fakeShard records what the coordinator sends to a shard.
type fakeShard struct{ got chan any }

func (f fakeShard) Receive(c *actor.Context) {
	switch c.Message().(type) {
	case actor.Started, actor.Stopped, actor.Initialized:
	default:
		f.got <- c.Message()
	}
}

func newTestCoordinator(t *testing.T, client bool) (*actor.Engine, *actor.PID, *actor.PID, chan any) {
	t.Helper()
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	require.NoError(t, err)
	rt := Runtime{Ctx: context.Background(), Log: slog.New(slog.DiscardHandler), Go: func(f func()) { go f() }}
	coord := SpawnCoordinator(engine.Spawn, CoordinatorConfig{Runtime: rt, Client: client, MinCap: 2, MaxCap: 4,
		MinIvl: time.Hour, MaxIvl: time.Hour, Shards: 1, PerShard: 128}, "coordinator")
	got := make(chan any, 64)
	shard := engine.Spawn(func() actor.Receiver { return fakeShard{got: got} }, "shard")
	t.Cleanup(func() { <-engine.Poison(coord).Done() })
	return engine, coord, shard, got
}

func next(t *testing.T, got chan any) any {
	t.Helper()
	select {
	case m := <-got:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("the coordinator sent nothing")
		return nil
	}
}

// A request waiting for an ID is dispatched in the same step that files the stream's arrival:
// no polling interval stands between arrival and hand-out.
func TestWaiterIsServedOnArrival(t *testing.T) {
	engine, coord, shard, got := newTestCoordinator(t, false)
	engine.Send(coord, messages.ShardUp{Shard: shard})
	reply := make(chan messages.Stream, 1)
	engine.Send(coord, messages.Get{ID: "0a0b0c0d", Reply: reply})
	engine.Send(coord, messages.StreamIdle{Shard: shard, ID: "0a0b0c0d"})
	// The very next message the coordinator handles already sees the stream handed out.
	state := make(chan messages.Snapshot, 1)
	engine.Send(coord, messages.State{Reply: state})
	snap := <-state
	require.Zero(t, snap.Waiters, "the waiter was served")
	require.Zero(t, snap.Idle, "the stream never sat idle")
	require.Equal(t, uint64(1), snap.HandedOut)
	take, ok := next(t, got).(messages.Take)
	require.True(t, ok)
	require.Equal(t, "0a0b0c0d", take.ID)
	require.Equal(t, reply, take.Get.Reply)
}

// A request for any stream takes the oldest idle one but never the control stream.
func TestAnyGetSkipsControlStream(t *testing.T) {
	engine, coord, shard, got := newTestCoordinator(t, false)
	engine.Send(coord, messages.ShardUp{Shard: shard})
	engine.Send(coord, messages.StreamIdle{Shard: shard, ID: ControlID})
	engine.Send(coord, messages.StreamIdle{Shard: shard, ID: "00000001"})
	engine.Send(coord, messages.StreamIdle{Shard: shard, ID: "00000002"})
	for _, want := range []string{"00000001", "00000002"} {
		engine.Send(coord, messages.Get{Reply: make(chan messages.Stream, 1)})
		require.Equal(t, want, next(t, got).(messages.Take).ID)
	}
	reply := make(chan messages.Stream, 1)
	engine.Send(coord, messages.Get{NoWait: true, Reply: reply})
	require.ErrorIs(t, (<-reply).Err, messages.ErrTimeout, "only the control stream is idle")
}

// An abandoned request is skipped: the stream that arrives next stays idle for the next caller.
func TestAbandonedWaiterIsSkipped(t *testing.T) {
	engine, coord, shard, got := newTestCoordinator(t, false)
	engine.Send(coord, messages.ShardUp{Shard: shard})
	abandoned := make(chan messages.Stream, 1)
	engine.Send(coord, messages.Get{Reply: abandoned})
	_, delivered := messages.Abandon(abandoned)
	require.False(t, delivered)
	engine.Send(coord, messages.StreamIdle{Shard: shard, ID: "00000003"})
	live := make(chan messages.Stream, 1)
	engine.Send(coord, messages.Get{Reply: live})
	take := next(t, got).(messages.Take)
	require.Equal(t, live, take.Get.Reply, "the stream went to the live caller")
}

// The server issues ControlID first, then unique random IDs; beyond MaxCap it holds the request
// until room frees up.
func TestReserveID(t *testing.T) {
	engine, coord, shard, got := newTestCoordinator(t, false)
	engine.Send(coord, messages.ShardUp{Shard: shard})
	ids := map[string]bool{}
	for i := range 5 { // the control stream and four others: MaxCap 4, the control apart
		id := <-reserve(engine, coord, shard)
		if i == 0 {
			require.Equal(t, ControlID, id)
		} else {
			_, err := ParseID(id)
			require.NoError(t, err)
			require.NotEqual(t, ControlID, id)
		}
		require.False(t, ids[id], "duplicate %s", id)
		ids[id] = true
		engine.Send(coord, messages.StreamIdle{Shard: shard, ID: id})
	}
	held := reserve(engine, coord, shard)
	require.Equal(t, 1, snapshot(engine, coord).Opening, "MaxCap 4 is reached: the fifth is held")
	require.Empty(t, held)

	// Taking one stream makes room: the held request gets its ID at once.
	engine.Send(coord, messages.Get{Reply: make(chan messages.Stream, 1)})
	require.IsType(t, messages.Take{}, next(t, got))
	require.NotEmpty(t, <-held)

	// A held request whose shard goes down is answered with "".
	again := reserve(engine, coord, shard)
	engine.Send(coord, messages.ShardDown{Shard: shard})
	require.Empty(t, <-again)
}

// A requester that gives up abandons its slot; an ID granted afterwards is not reserved.
func TestReserveIDAbandoned(t *testing.T) {
	engine, coord, shard, _ := newTestCoordinator(t, false)
	engine.Send(coord, messages.ShardUp{Shard: shard})
	fill(engine, coord, shard)
	held := reserve(engine, coord, shard)
	require.Equal(t, 1, snapshot(engine, coord).Opening)
	require.Empty(t, messages.AbandonID(held))
	engine.Send(coord, messages.Get{Reply: make(chan messages.Stream, 1)}) // frees room
	require.Zero(t, snapshot(engine, coord).Opening, "the abandoned request was dropped, not granted")
}

// With two connections up, neither may hold more than half of MaxCap; a connection over its
// share waits while the other goes ahead.
func TestReserveIDShare(t *testing.T) {
	engine, coord, a, _ := newTestCoordinator(t, false)
	b := engine.Spawn(func() actor.Receiver { return fakeShard{got: make(chan any, 64)} }, "b")
	engine.Send(coord, messages.ShardUp{Shard: a})
	engine.Send(coord, messages.ShardUp{Shard: b})
	require.NotEmpty(t, <-reserve(engine, coord, a))
	require.NotEmpty(t, <-reserve(engine, coord, a))
	overShare := reserve(engine, coord, a)
	require.NotEmpty(t, <-reserve(engine, coord, b), "b goes ahead of a's held request")
	require.NotEmpty(t, <-reserve(engine, coord, b))
	require.Equal(t, 1, snapshot(engine, coord).Opening-4, "a's third request is held")
	require.Empty(t, overShare)
}

func snapshot(engine *actor.Engine, coord *actor.PID) messages.Snapshot {
	reply := make(chan messages.Snapshot, 1)
	engine.Send(coord, messages.State{Reply: reply})
	return <-reply
}

// fill files idle streams on shard up to MaxCap 4 (five: the control stream takes no slot).
func fill(engine *actor.Engine, coord, shard *actor.PID) {
	for range 5 {
		engine.Send(coord, messages.StreamIdle{Shard: shard, ID: <-reserve(engine, coord, shard)})
	}
}

func reserve(engine *actor.Engine, coord, shard *actor.PID) chan string {
	reply := make(chan string, 1)
	engine.Send(coord, messages.ReserveID{Shard: shard, Reply: reply})
	return reply
}

// A client coordinator asks its shard for the streams it lacks as soon as the shard is up, and
// for a replacement at once when a stream is taken.
func TestRefillOnTake(t *testing.T) {
	engine, coord, shard, got := newTestCoordinator(t, true)
	engine.Send(coord, messages.Start{})
	engine.Send(coord, messages.ShardUp{Shard: shard})
	require.Equal(t, messages.Open{N: 2}, next(t, got))
	engine.Send(coord, messages.StreamIdle{Shard: shard, ID: "00000001"})
	engine.Send(coord, messages.StreamIdle{Shard: shard, ID: "00000002"})
	engine.Send(coord, messages.Get{ID: "00000001", Reply: make(chan messages.Stream, 1)})
	require.Equal(t, "00000001", next(t, got).(messages.Take).ID)
	require.Equal(t, messages.Open{N: 1}, next(t, got), "the replacement is ordered with the take")
}

// A shard that fails is retired through the coordinator: Retired reaches the shard after every
// Take the coordinator sent it, and a Take the failed shard could not serve is answered.
func TestRetireAfterPendingTakes(t *testing.T) {
	engine, coord, shard, got := newTestCoordinator(t, false)
	engine.Send(coord, messages.ShardUp{Shard: shard})
	engine.Send(coord, messages.StreamIdle{Shard: shard, ID: "0a0b0c0d"})
	reply := make(chan messages.Stream, 1)
	engine.Send(coord, messages.Get{ID: "0a0b0c0d", NoWait: true, Reply: reply})
	// The shard fails with the Take in its inbox: it reports ShardDown first.
	engine.Send(coord, messages.ShardDown{Shard: shard, IDs: []string{"0a0b0c0d"}})
	take, ok := next(t, got).(messages.Take)
	require.True(t, ok, "the Take comes first")
	require.IsType(t, messages.Retired{}, next(t, got), "then Retired")
	engine.Send(coord, messages.TakeMissed{ID: take.ID, Get: take.Get}) // the failed shard has no stream
	select {
	case s := <-reply:
		require.ErrorIs(t, s.Err, messages.ErrStreamGone)
	case <-time.After(10 * time.Second):
		t.Fatal("the caller was never answered")
	}
}

// A stream the peer closed, taken for a caller who gave up, comes back as reachable by ID only:
// it is not idle and IncomingGet never gets it.
func TestPeerClosedStreamReturnsLingering(t *testing.T) {
	engine, coord, shard, got := newTestCoordinator(t, false)
	engine.Send(coord, messages.ShardUp{Shard: shard})
	engine.Send(coord, messages.StreamIdle{Shard: shard, ID: "0a0b0c0d"})
	engine.Send(coord, messages.StreamClosedByPeer{Shard: shard, ID: "0a0b0c0d"})
	reply := make(chan messages.Stream, 1)
	engine.Send(coord, messages.Get{ID: "0a0b0c0d", Reply: reply})
	take := next(t, got).(messages.Take)
	messages.Abandon(reply)
	engine.Send(coord, messages.StreamIdle{Shard: shard, ID: take.ID, Returned: true, PeerClosed: true})
	s := snapshot(engine, coord)
	require.Zero(t, s.Idle)
	require.Equal(t, 1, s.PeerClosed)
	anyStream := make(chan messages.Stream, 1)
	engine.Send(coord, messages.Get{NoWait: true, Reply: anyStream})
	require.ErrorIs(t, (<-anyStream).Err, messages.ErrTimeout, "IncomingGet does not get the peer-closed stream")
	again := make(chan messages.Stream, 1)
	engine.Send(coord, messages.Get{ID: "0a0b0c0d", Reply: again})
	require.Equal(t, "0a0b0c0d", next(t, got).(messages.Take).ID, "still reachable by ID, and only so")
}

// Flush makes room for held streams before newer ones.
func TestFlushGrantsHeld(t *testing.T) {
	engine, coord, shard, _ := newTestCoordinator(t, false)
	engine.Send(coord, messages.ShardUp{Shard: shard})
	fill(engine, coord, shard)
	held := reserve(engine, coord, shard)
	require.Equal(t, 1, snapshot(engine, coord).Opening)
	done := make(chan struct{})
	engine.Send(coord, messages.Flush{Reply: done})
	<-done
	select {
	case id := <-held:
		require.NotEmpty(t, id)
	case <-time.After(10 * time.Second):
		t.Fatal("the held request is still held after Flush emptied the pool")
	}
}

// The control ID is issued again when its first stream never became idle.
func TestControlIDReissuedAfterFailedHandshake(t *testing.T) {
	engine, coord, shard, _ := newTestCoordinator(t, false)
	engine.Send(coord, messages.ShardUp{Shard: shard})
	id := <-reserve(engine, coord, shard)
	require.Equal(t, ControlID, id)
	engine.Send(coord, messages.ReleaseID{ID: id}) // its ID write failed
	require.Equal(t, ControlID, <-reserve(engine, coord, shard))
}

// Held requests whose stream gave up are dropped on the next tick, not kept forever.
func TestAbandonedHeldRequestsArePruned(t *testing.T) {
	engine, coord, shard, _ := newTestCoordinator(t, false)
	engine.Send(coord, messages.ShardUp{Shard: shard})
	fill(engine, coord, shard)
	for range 3 {
		messages.AbandonID(reserve(engine, coord, shard))
	}
	require.Equal(t, 3, snapshot(engine, coord).Opening)
	engine.Send(coord, messages.Tick{})
	require.Zero(t, snapshot(engine, coord).Opening)
}
