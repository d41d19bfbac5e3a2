package actors

import (
	"testing"

	"github.com/anthdm/hollywood/actor"
	"github.com/stretchr/testify/assert"
)

// TestShardSetKeepsArrivalOrder: the sweeps walk the connections in the order they came up;
// removing one keeps the others' order, a shard that comes up again takes its old place, and a
// shard that is not up (or no shard) finds nothing.
func TestShardSetKeepsArrivalOrder(t *testing.T) {
	s := newShardSet()
	pids := []*actor.PID{actor.NewPID("local", "a"), actor.NewPID("local", "b"), actor.NewPID("local", "c")}
	loads := make([]*shardLoad, len(pids))
	for i, pid := range pids {
		loads[i] = &shardLoad{pid: pid, slot: i}
		s.add(loads[i])
	}
	assert.Equal(t, loads, s.all)
	assert.Same(t, loads[1], s.of(actor.NewPID("local", "b")), "found by the shard's ID")

	assert.Same(t, loads[1], s.remove(pids[1]))
	assert.Equal(t, []*shardLoad{loads[0], loads[2]}, s.all, "the others keep their order")
	assert.Nil(t, s.of(pids[1]))
	assert.Nil(t, s.remove(pids[1]), "removed once")
	assert.Equal(t, 2, s.count())

	again := &shardLoad{pid: pids[0], slot: 0}
	s.add(again)
	assert.Equal(t, []*shardLoad{again, loads[2]}, s.all, "a shard's new connection replaces its old one")
	assert.Nil(t, s.of(nil))

	s.clear()
	assert.Zero(t, s.count())
	assert.Nil(t, s.of(pids[2]))
}
