package actors

import (
	"github.com/anthdm/hollywood/actor"
	"github.com/quicpool/quicpool/internal/core"
)

// Spawn starts the actors of one pool, idle until they receive core.Start: the coordinator,
// which the pool's callers talk to, and the supervisor, which owns the shards. Package quicpool
// calls it; its argument types are internal to the module. To run a pool inside your own actor
// system, build it with quicpool.NewClient or quicpool.NewServer and the WithEngine or WithParent
// option, and send it the requests of package messages.
func Spawn(spawn core.Spawner, cfg *core.Config) (coordinator, supervisor *actor.PID) {
	rt := newRuntime(cfg)
	rt.coordinator = rt.spawn(spawn, newCoordinator(rt), "coordinator", coordinatorInbox)
	rt.supervisor = rt.spawn(spawn, newSupervisor(rt), "supervisor", smallInbox)
	return rt.coordinator, rt.supervisor
}
