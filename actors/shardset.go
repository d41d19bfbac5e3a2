package actors

import (
	"slices"

	"github.com/anthdm/hollywood/actor"
)

// shardSet is the coordinator's connections that are up: by shard, for the messages that name
// one, and in the order they came up, for the sweeps over all of them. Some sweeps run on every
// take (a client's opens under way and least loaded shard, a server's held streams), and walking
// a slice costs a fraction of walking a map: at 64 connections, a map's walks were 3% of a tunnel
// op's CPU. A pool has at most a few hundred connections, so removing one from the slice is cheap.
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

// add records st, in place of the shard's earlier connection if it had one up.
func (s *shardSet) add(st *shardLoad) {
	if i := slices.Index(s.all, s.byID[st.pid.ID]); i >= 0 {
		s.all[i] = st
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
	s.all = slices.DeleteFunc(s.all, func(o *shardLoad) bool { return o == st })
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
