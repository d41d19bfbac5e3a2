package actors

import (
	"testing"

	"github.com/anthdm/hollywood/actor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestShardSetKeepsArrivalOrder: the sweeps walk the connections in the order they came up;
// removing one keeps the others' order, a shard's new connection takes the place of its old one,
// and a shard that is not up (or no shard) finds nothing.
func TestShardSetKeepsArrivalOrder(t *testing.T) {
	s := newShardSet()
	pids := []*actor.PID{actor.NewPID("local", "a"), actor.NewPID("local", "b"), actor.NewPID("local", "c"),
		actor.NewPID("local", "d")}
	loads := make([]*shardLoad, len(pids))
	for i, pid := range pids {
		loads[i] = &shardLoad{pid: pid, slot: i}
		s.add(loads[i])
	}
	sameOrder(t, s.all, loads...)
	assert.Same(t, loads[1], s.of(actor.NewPID("local", "b")), "found by the shard's PID ID")

	assert.Same(t, loads[0], s.remove(pids[0]))
	sameOrder(t, s.all, loads[1], loads[2], loads[3])
	assert.Same(t, loads[2], s.remove(pids[2]))
	sameOrder(t, s.all, loads[1], loads[3])
	assert.Nil(t, s.of(pids[2]))
	assert.Nil(t, s.remove(pids[2]), "removed once")
	assert.Nil(t, s.remove(nil))
	assert.Nil(t, s.of(nil))
	assert.Equal(t, 2, s.count())

	again := &shardLoad{pid: pids[1], slot: 9}
	s.add(again)
	sameOrder(t, s.all, again, loads[3])
	assert.Same(t, again, s.of(pids[1]))

	s.clear()
	assert.Zero(t, s.count())
	assert.Nil(t, s.of(pids[3]))
	s.add(loads[0])
	sameOrder(t, s.all, loads[0])
	assert.Same(t, loads[0], s.of(pids[0]))
}

// sameOrder checks that got holds exactly want, the same records in the same order.
func sameOrder(t *testing.T, got []*shardLoad, want ...*shardLoad) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		assert.Same(t, want[i], got[i], "connection %d", i)
	}
}
