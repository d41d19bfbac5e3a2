package actors

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool/internal/core"
)

// Server admission: how many streams a connection may have open at once, and who gets a slot.
//
// Stream credit. QUIC fixes at the handshake how many streams a client may have open at once
// (its MaxIncomingStreams), and a server cannot take credit back. The pool's budget is
// 2 x MaxCap streams: room for every idle stream and as many in use. A connection gets what the
// connections that answer leave of it, and at least minCredit (2 x PerShard: a quicpool client's
// connection holds at most PerShard idle streams), so a NodePass client alone gets the whole
// budget, and the streams every connection may open at once stay below 2 x MaxCap + minCredit
// per connection, whatever the order in which they came: at most 6 x MaxCap at full slots. The
// credit is given once the client has verified its address (transport.go: a Retry, or a token
// from an earlier connection), so a spoofed Initial holds none. A silent connection's credit
// does not count (it is about to be replaced or to time out), so a client that reconnects is not
// starved by the connection it left behind.
//
// Slots. A server has 2 x Shards slots, and one IP address may hold at most Shards of them (what
// one client pool dials): a stranger that holds all it may keeps out no one from another
// address, and the fair share of the idle streams (issuer.go) and the stream credit bound what
// the extra connections cost. A connection from an address at its limit gets a slot only by
// replacing a silent connection of the same address (replaceSilent).

// creditWait bounds how long the listener waits for the supervisor's answer on a connection's
// credit before refusing the connection.
const creditWait = time.Second

var errCreditTimeout = errors.New("quicpool: the server pool did not answer in time")

// grantKey keys a connection's credit grant in its context.
type grantKey struct{}

// grant is the stream credit given to one connection.
type grant struct {
	id      uint64
	streams int
}

// grantRecord is the supervisor's record of a grant that is in use.
type grantRecord struct {
	streams int
	slot    int        // the slot the connection took, -1 while it is in its handshake
	shard   *actor.PID // the shard that serves it
}

// credits is the supervisor's ledger of the stream credit given to connections that are not closed.
type credits struct {
	next    uint64
	granted map[uint64]*grantRecord
}

// minCredit is the least stream credit a connection gets.
func (rt *runtime) minCredit() int { return 2 * rt.PerShard }

// giveCredit answers a connection in its handshake with its stream credit.
func (s *supervisor) giveCredit(m creditAsk) {
	budget := 2 * s.rt.MaxCap
	for _, g := range s.credits.granted {
		if g.slot >= 0 && s.slots[g.slot].silent(g.shard) {
			continue // silent: about to be replaced or to time out
		}
		budget -= g.streams
	}
	if s.credits.granted == nil {
		s.credits.granted = make(map[uint64]*grantRecord)
	}
	s.credits.next++
	g := grant{id: s.credits.next, streams: min(max(budget, s.rt.minCredit()), max(2*s.rt.MaxCap, s.rt.minCredit()))}
	if deliver(m.reply, g) {
		s.credits.granted[g.id] = &grantRecord{streams: g.streams, slot: -1}
	}
}

// creditUsed records which slot a connection's credit went to.
func (s *supervisor) creditUsed(conn *quic.Conn, slot int) {
	if id, ok := conn.Context().Value(grantKey{}).(uint64); ok {
		if g := s.credits.granted[id]; g != nil {
			g.slot, g.shard = slot, s.slots[slot].shard
		}
	}
}

// askCredit (run by quic-go's listener for each new connection) asks the supervisor for the
// connection's stream credit.
func (rt *runtime) askCredit(engine *actor.Engine) (grant, error) {
	reply := make(chan grant, 1)
	engine.Send(rt.supervisor, creditAsk{reply: reply})
	timer := time.NewTimer(creditWait)
	defer timer.Stop()
	select {
	case g := <-reply:
		return g, nil
	case <-timer.C:
	case <-rt.Ctx.Done():
		return grant{}, core.ErrClosed
	}
	if g, ok := abandonGrant(reply); ok {
		return g, nil
	}
	return grant{}, errCreditTimeout
}

// abandonGrant stops waiting for a credit answer: it returns one that came meanwhile.
func abandonGrant(reply chan grant) (grant, bool) {
	select {
	case reply <- grant{}:
		return grant{}, false
	default:
		return <-reply, true
	}
}

// creditHandout pairs each connection's credit, chosen by quic-go's GetConfigForClient, with the
// connection's context, given by its ConnContext. quic-go's listener calls the two in that order
// for each new connection, from one goroutine, and only from it: the handout needs no lock. When
// the connection closes (in its handshake or later), its credit goes back to the supervisor.
type creditHandout struct {
	rt     *runtime
	engine *actor.Engine
	info   *quic.ClientInfo // the connection the pending grant is for
	grant  grant
}

// config returns base with the stream credit of the connection info is about.
func (h *creditHandout) config(base *quic.Config, info *quic.ClientInfo) (*quic.Config, error) {
	h.unpaired()
	g, err := h.rt.askCredit(h.engine)
	if errors.Is(err, errCreditTimeout) { // the pool is overloaded: a refusal like any other
		h.engine.Send(h.rt.supervisor, refusal{addr: info.RemoteAddr.String(), err: fmt.Errorf("%w: %w", core.ErrPoolFull, err),
			reason: refusedFull, perInitial: true})
	}
	if err != nil {
		return nil, err
	}
	h.info, h.grant = info, g
	conf := base.Clone()
	conf.MaxIncomingStreams = int64(g.streams)
	return conf, nil
}

// context tags a new connection's context with its grant, and returns the grant when the
// connection closes.
func (h *creditHandout) context(ctx context.Context, info *quic.ClientInfo) (context.Context, error) {
	if info != h.info || h.info == nil {
		return ctx, nil
	}
	id, engine, supervisor := h.grant.id, h.engine, h.rt.supervisor
	h.info = nil
	context.AfterFunc(ctx, func() { engine.Send(supervisor, creditReturned{id: id}) })
	return context.WithValue(ctx, grantKey{}, id), nil
}

// unpaired returns a grant whose connection never got a context (quic-go gave up on it between
// the two calls).
func (h *creditHandout) unpaired() {
	if h.info != nil {
		h.engine.Send(h.rt.supervisor, creditReturned{id: h.grant.id})
		h.info = nil
	}
}

// heldBy is the number of slots connections from ip hold. A slot's former connection does not
// count: its client can make one only by replacing a connection of its own, one per slot, and it
// takes its slot back rather than a new one (restoreFormer).
func (s *supervisor) heldBy(ip netip.Addr) int {
	n := 0
	for i := range s.slots {
		if s.slots[i].shard != nil && s.slots[i].peer == ip {
			n++
		}
	}
	return n
}

// silent reports whether shard is the slot's connection or its former one, and its peer is silent.
func (sl *slot) silent(shard *actor.PID) bool {
	return same(sl.shard, shard) && sl.suspect || same(sl.former, shard) && sl.formerSilent
}
