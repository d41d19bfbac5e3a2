package actors

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/quicpool/quicpool/internal/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestIdleStoreKeepsStatesThroughSuspicion: the store files streams under their Key, keeps its
// counts (usable, per connection, peer-closed) through every change of state, hands out in
// arrival order, and a connection that goes silent and comes back keeps each peer-closed
// stream's time, so its grace period is not restarted.
func TestIdleStoreKeepsStatesThroughSuspicion(t *testing.T) {
	is := newIdleStreams()
	a, b := &shardLoad{slot: 0}, &shardLoad{slot: 1}
	is.addShard(a)
	is.addShard(b)
	closedAt := time.Now().Add(-time.Second)

	is.add(wire.ControlID, idleStream{shard: a})
	for _, id := range []string{"0000000a", "0000000b", "0000000c"} {
		is.add(id, idleStream{shard: a})
	}
	is.add("000000b1", idleStream{shard: b})
	is.markPeerClosed(mustKey(t, "0000000b"), closedAt)
	require.Equal(t, 3, is.usable) // not the control stream, not the peer-closed one
	require.Equal(t, 2, a.idle)
	require.Equal(t, 1, is.peerClosedCount())
	require.True(t, is.hasControl())
	require.True(t, is.peerClosed(mustKey(t, "0000000b")))

	is.setSuspect(a, true)
	assert.Equal(t, 1, is.usable, "a silent connection's streams are not usable")
	assert.Equal(t, 0, a.idle)
	assert.True(t, is.has("0000000a"), "but they stay reachable by ID")
	is.setSuspect(a, false)
	assert.Equal(t, 3, is.usable)
	assert.Equal(t, 2, a.idle)
	assert.Equal(t, closedAt, is.closedAt[mustKey(t, "0000000b")], "the peer-closed time survives")
	assert.Empty(t, is.expirePeerClosed(closedAt.Add(time.Second), 2*time.Second), "its grace is not over")

	var ids []string
	var slots []int
	for {
		id, e, ok := is.oldest()
		if !ok {
			break
		}
		ids, slots = append(ids, id), append(slots, e.shard.slot)
	}
	assert.ElementsMatch(t, []string{"0000000a", "0000000c", "000000b1"}, ids)
	assert.Equal(t, []int{0, 0, 1}, slots, "a run from one connection, then the next")
	assert.Equal(t, 0, is.usable)
	assert.True(t, is.has(wire.ControlID) && is.has("0000000b"))

	_, ok := is.get("not an id")
	assert.False(t, ok)
	assert.Panics(t, func() { is.add("not an id", idleStream{shard: a}) })
}

func mustKey(t *testing.T, id string) wire.Key {
	k, err := wire.KeyOf(id)
	require.NoError(t, err)
	return k
}

// fill files n usable streams of st under IDs that start with prefix (one hex digit).
func fill(is *idleStreams, st *shardLoad, prefix string, n int) {
	for i := range n {
		is.add(fmt.Sprintf("%s%07x", prefix, i), idleStream{shard: st})
	}
}

// takeSlots takes n streams for callers that take any and returns the slots they came from.
func takeSlots(t *testing.T, is *idleStreams, n int) []int {
	t.Helper()
	slots := make([]int, n)
	for i := range slots {
		_, e, ok := is.oldest()
		require.True(t, ok)
		slots[i] = e.shard.slot
	}
	return slots
}

// TestHandOutTurnsSurviveARemovedConnection: when a connection goes, the connection whose run is
// under way keeps it, and the peer whose turn is next keeps its turn.
func TestHandOutTurnsSurviveARemovedConnection(t *testing.T) {
	t.Run("connections of one peer", func(t *testing.T) {
		is := newIdleStreams()
		x, y, z := &shardLoad{slot: 0}, &shardLoad{slot: 1}, &shardLoad{slot: 2}
		for i, st := range []*shardLoad{x, y, z} {
			is.addShard(st)
			fill(&is, st, fmt.Sprint(i+1), 2*handOutRun)
		}
		takeSlots(t, &is, handOutRun+4) // a run from x, then 4 of y's
		is.removeShard(x)
		is.dropShard(x, false)
		got := takeSlots(t, &is, handOutRun-4+1)
		assert.Equal(t, slices.Repeat([]int{1}, handOutRun-4), got[:handOutRun-4], "y's run goes on")
		assert.Equal(t, 2, got[handOutRun-4], "then z")
	})
	t.Run("peers", func(t *testing.T) {
		is := newIdleStreams()
		for i, addr := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
			st := &shardLoad{slot: i}
			is.peers = append(is.peers, &peerConns{addr: netip.MustParseAddr(addr), conns: []*shardLoad{st}})
			fill(&is, st, fmt.Sprint(i+1), 4)
		}
		require.Equal(t, []int{0, 1}, takeSlots(t, &is, 2))
		is.removeShard(is.peers[0].conns[0])
		assert.Equal(t, []int{2, 1, 2}, takeSlots(t, &is, 3), "the third peer's turn was next")
		is.repeatTurn() // takeAny: that stream's peer had stopped reading it
		assert.Equal(t, []int{2, 1}, takeSlots(t, &is, 2), "the same peer's turn again")
	})
}

// An ID discarded, issued again and discarded again is remembered as long as its latest discard
// is among the last limit: the eviction of its first entry does not forget it.
func TestGoneIDsKeepTheLatestDiscard(t *testing.T) {
	g := newGoneIDs(0)
	g.add("00000001")
	g.forget("00000001") // issued again
	require.False(t, g.has("00000001"))
	g.add("00000001") // discarded again
	for i := range g.limit - 1 {
		g.add(fmt.Sprintf("1%07x", i))
	}
	require.True(t, g.has("00000001"), "its latest discard is among the last %d", g.limit)
	require.True(t, g.has("10000000"))
	g.add("20000000")
	require.False(t, g.has("00000001"), "now it is not")
	require.Len(t, g.order, g.limit)
	require.Len(t, g.set, g.limit)
}

// A pool remembers the last 2 x maxCap discarded IDs, and at least 4096 (the README's numbers).
func TestGoneIDsLimit(t *testing.T) {
	require.Equal(t, 4096, newGoneIDs(0).limit)
	require.Equal(t, 4096, newGoneIDs(2048).limit)
	require.Equal(t, 16384, newGoneIDs(8192).limit)
}
