package actors

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool/internal/core"
	"github.com/quicpool/quicpool/internal/wire"
	"github.com/quicpool/quicpool/messages"
)

// The server side of the supervisor: the listener, and who gets a shard slot.

// serve (server) listens, retrying with backoff until it can, then accepts connections until the
// supervisor stops or the pool closes. It closes the transport only once every connection it
// accepted has been closed (or after closeWait), so that each one got a CONNECTION_CLOSE.
func (s *supervisor) serve() {
	for attempt := 1; ; attempt++ {
		ln, closeTransport, err := s.rt.listen(s.engine)
		if err != nil {
			s.engine.Send(s.self, listenResult{err: err})
			select {
			case <-time.After(s.rt.Policy.Backoff(attempt)):
				continue
			case <-s.ctx.Done():
				return
			}
		}
		attempt = 0
		s.engine.Send(s.self, listenResult{addr: ln.Addr()})
		var open []chan struct{}
		for {
			conn, err := ln.Accept(s.ctx)
			if err != nil {
				break
			}
			closed := make(chan struct{})
			open = append(stillOpen(open), closed)
			s.engine.Send(s.self, connAccepted{conn: conn, closed: closed})
		}
		_ = ln.Close()
		waitClosed(open, closeWait)
		closeTransport()
		if s.ctx.Err() != nil {
			return
		}
		// The socket failed under us: listen again.
	}
}

func stillOpen(chans []chan struct{}) []chan struct{} {
	kept := chans[:0]
	for _, ch := range chans {
		if !core.IsClosed(ch) {
			kept = append(kept, ch)
		}
	}
	return kept
}

func waitClosed(chans []chan struct{}, bound time.Duration) {
	timeout := time.NewTimer(bound)
	defer timeout.Stop()
	for _, ch := range chans {
		select {
		case <-ch:
		case <-timeout.C:
			return
		}
	}
}

// listened reports the outcome of a listen.
func (s *supervisor) listened(m listenResult) {
	if m.err != nil {
		s.rt.Log.Error("server pool cannot listen", "err", m.err)
		s.rt.emit(s.engine, messages.Event{Kind: messages.EventListenFailed, Slot: -1, Err: m.err})
		s.rt.Tell(listenFailed{err: m.err})
		return
	}
	s.rt.Log.Info("server pool listening", "addr", m.addr.String())
	s.rt.emit(s.engine, messages.Event{Kind: messages.EventListening, Slot: -1, Addr: m.addr.String()})
	s.rt.Tell(listening{addr: m.addr.String()})
}

// admit gives an accepted connection a free shard slot, replaces a silent connection of the same
// client, or refuses it.
func (s *supervisor) admit(conn *quic.Conn, closed chan struct{}) {
	addr := conn.RemoteAddr()
	if s.shutting {
		s.closeConn(conn, closed, wire.ConnCodeClosed, "quicpool: pool closed")
		return
	}
	if s.rt.Allow != nil { // normally refused before the handshake; a migrated address is caught here
		if err := s.rt.Allow(addr); err != nil {
			s.refuse(conn, closed, err, refusedNotAllowed)
			return
		}
	}
	ip, i := addrIP(addr), -1
	if s.heldBy(ip) < s.rt.Shards {
		i = s.freeSlot()
	}
	if i < 0 {
		i = s.replaceSilent(addr)
	}
	if i < 0 {
		err := fmt.Errorf("%w: all %d shard slots are taken", core.ErrPoolFull, len(s.slots))
		if n := s.heldBy(ip); n >= s.rt.Shards {
			err = fmt.Errorf("%w: %s holds all the connections one address may hold (%d)", core.ErrPoolFull, ip, n)
		}
		s.refuse(conn, closed, err, refusedFull)
		return
	}
	s.slots[i].shard = s.spawnShard(newServerShard(s.rt, i, conn, closed), "server", i)
	s.slots[i].peer, s.slots[i].suspect = ip, false
	s.creditUsed(conn, i)
	s.rt.Log.Info("client connected", "slot", i, "remote", addr.String())
}

// freeSlot returns a slot no connection holds, one without a former connection if there is one
// (a newcomer's replacement then closes no other client's connection), or -1.
func (s *supervisor) freeSlot() int {
	free := -1
	for i := range s.slots {
		switch sl := &s.slots[i]; {
		case sl.shard != nil:
		case sl.former == nil:
			return i
		case free < 0:
			free = i
		}
	}
	return free
}

// replaceSilent frees the slot of a connection from addr's IP whose peer has stopped answering,
// if there is one: a client that reconnects while the server still holds its old, dead
// connection (a NodePass client drops a connection without closing it; a restarted client leaves
// one behind until its idle timeout) gets back in, while a connection that still answers is never
// displaced, however idle, and no other address can displace a client at all. It returns the
// freed slot or -1.
//
// The silent connection is not closed: it may only have been paused, with streams in use, and
// its client decides (a quicpool client drains it once a standby took over, and closes it when
// its streams are done: drain.go). It stays in the pool as the slot's former connection until
// its client closes it, it times out, or the slot is replaced again (closeFormer); or it takes
// the slot back if the new connection ends while it answers (restoreFormer). Its streams are
// withheld, it has no share of the pool (fairShare), its stream credit does not count while it
// is silent (giveCredit).
func (s *supervisor) replaceSilent(addr net.Addr) int {
	ip := addrIP(addr)
	for i := range s.slots {
		sl := &s.slots[i]
		if sl.shard == nil || sl.peer != ip || !sl.suspect {
			continue
		}
		s.rt.Log.Info("client reconnected: its silent connection gives up its slot", "slot", i, "remote", addr.String())
		s.rt.emit(s.engine, messages.Event{Kind: messages.EventReplaced, Slot: i, Addr: addr.String()})
		s.closeFormer(i)
		sl.former, sl.formerSilent, sl.formerPeer = sl.shard, true, sl.peer
		sl.shard, sl.suspect = nil, false
		s.rt.Tell(formerConn{shard: sl.former, former: true})
		return i
	}
	return -1
}

func addrIP(addr net.Addr) netip.Addr {
	if udp, ok := addr.(*net.UDPAddr); ok {
		ip, _ := netip.AddrFromSlice(udp.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// refuse counts, reports and closes a connection the pool does not take.
func (s *supervisor) refuse(conn *quic.Conn, closed chan struct{}, err error, reason refusalReason) {
	s.refused(conn.RemoteAddr().String(), err, reason)
	s.closeConn(conn, closed, wire.ConnCodeRefused, err.Error())
}

// closeConn closes a connection in a goroutine (CloseWithError waits for the connection's run
// loop) and then marks it closed for the listener.
func (s *supervisor) closeConn(conn *quic.Conn, closed chan struct{}, code quic.ApplicationErrorCode, reason string) {
	s.rt.Go(func() {
		defer close(closed)
		_ = conn.CloseWithError(code, reason)
	})
}

// refused counts, reports and logs a refused connection. Log lines thin out under a flood: the
// 1st, 2nd, 4th, 8th... refusal is logged, with the count so far.
func (s *supervisor) refused(addr string, err error, reason refusalReason) {
	s.refusals++
	s.rt.emit(s.engine, messages.Event{Kind: messages.EventRefused, Slot: -1, Addr: addr, Err: err})
	s.rt.Tell(connRefused{reason: reason})
	if s.refusals&(s.refusals-1) == 0 {
		s.rt.Log.Warn("connection refused", "remote", addr, "reason", err, "refused so far", s.refusals)
	}
}

// A client's first flight usually spans two Initial packets (a ClientHello with a post-quantum
// key share is larger than one), and quic-go's listener asks for the admission of each (and of
// any Initial retransmitted before the refusal arrived), so a dial refused there (not allowed, or
// no stream credit in time) would be counted two or three times. recentRefusals remembers the
// addresses (IP and port) refused there last: a refusal of one of them within refusalRepeat of
// its first is the same dial's. The other refusals (at accept, of a certificate, of a moved
// connection) are made once per connection and always count. A client redials from a new port,
// so each of its dials counts; a dial's Initial retransmitted later than refusalRepeat, or after
// refusalMemory other addresses were refused, counts again.
const (
	refusalMemory = 64
	refusalRepeat = 2 * time.Second // a flight's Initials come together; a retransmission within a few PTOs
)

type recentRefusals struct {
	addrs [refusalMemory]string
	at    [refusalMemory]time.Time
	next  int
}

// repeat reports whether addr was first refused less than refusalRepeat before now, and
// otherwise remembers it as refused now.
func (r *recentRefusals) repeat(addr string, now time.Time) bool {
	for i, a := range r.addrs {
		if a == addr && now.Sub(r.at[i]) < refusalRepeat {
			return true
		}
	}
	r.addrs[r.next], r.at[r.next] = addr, now
	r.next = (r.next + 1) % refusalMemory
	return false
}
