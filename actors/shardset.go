package actors

import (
	"slices"

	"github.com/anthdm/hollywood/actor"
)

// shardSet is the coordinator's connections that are up: by shard PID ID, for the messages that
// name a shard, and in the order they came up, for the sweeps over all of them (a sweep that
// compares connections gives ties to the one that came up first). Some sweeps run on every take
// (a client's opens under way and least loaded shard, a server's held streams), and walking a
// slice costs a fraction of walking a map: at 64 connections, a map's walks were 3% of a tunnel
// op's CPU. A pool has at most 128 connections (a server's slots), so removing one from the
// slice is cheap.
type shardSet struct {
	byID map[string]*shardLoad
	all  []*shardLoad
}

func newShardSet() shardSet { return shardSet{byID: make(map[string]*shardLoad)} }

// of returns the shard pid's connection, or nil if it is not up.
func (s *shardSet) of(pid *actor.PID) *shardLoad {
	if pid == nil {
		return nil
	}
	return s.byID[pid.ID]
}

// add records st; if st's shard had a connection up already, st takes its place.
func (s *shardSet) add(st *shardLoad) {
	if old := s.byID[st.pid.ID]; old != nil {
		s.all[slices.Index(s.all, old)] = st
	} else {
		s.all = append(s.all, st)
	}
	s.byID[st.pid.ID] = st
}

// remove forgets the shard pid's connection and returns it, or nil if it was not up.
func (s *shardSet) remove(pid *actor.PID) *shardLoad {
	st := s.of(pid)
	if st == nil {
		return nil
	}
	delete(s.byID, pid.ID)
	i := slices.Index(s.all, st)
	s.all = slices.Delete(s.all, i, i+1)
	return st
}

// count is the number of connections up.
func (s *shardSet) count() int { return len(s.all) }

// clear forgets every connection.
func (s *shardSet) clear() {
	clear(s.byID)
	clear(s.all)
	s.all = s.all[:0]
}
