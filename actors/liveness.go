package actors

import (
	"context"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool/internal/core"
)

// silenceLimit is how long a connection may go without a packet from its peer before it is
// suspect. An idle connection pings every core.ProbeInterval and the peer acknowledges each
// ping, so a live peer is heard at least that often plus a round trip; four intervals and four
// round trips leave room for a lost ping and a busy host.
func silenceLimit(smoothedRTT time.Duration) time.Duration {
	return 4*core.ProbeInterval + 4*smoothedRTT
}

// watchConn runs in its own goroutine for the life of a shard's connection: one goroutine per
// connection watches its end, its closing and its peer's liveness.
//   - When the connection dies, it reports the cause to the shard.
//   - When the shard stops, it closes the connection (with the reason the shard's context carries,
//     else closing). It also closes it if the liveness check panics; closing a connection that is
//     already dead does nothing.
//   - Every core.ProbeInterval it reads the connection's received-packet counter. A connection not
//     heard from for silenceLimit is suspect: the shard tells the coordinator (which stops handing
//     out its streams) and the supervisor (which, on a client, dials a standby connection); when
//     the peer is heard again it tells them it is alive. Once a second the coordinator also learns
//     when the peer was last heard, for Stats.
//   - Once the connection drains (a client's, after a switch-over: drain.go), it closes the
//     connection when the connection is done with its streams, and reports drained to the
//     supervisor; the liveness of a connection out of the pool concerns no one.
func (s *shard) watchConn(conn *quic.Conn, closing string) {
	defer func() { s.closeConn(s.ctx, conn, closing) }()
	ticker := time.NewTicker(core.ProbeInterval)
	defer ticker.Stop()
	received, heard, remote := conn.ConnectionStats().PacketsReceived, time.Now(), conn.RemoteAddr().String()
	var suspect bool
	var reported time.Time
	var drain *drainWatch
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-conn.Context().Done():
			err := context.Cause(conn.Context())
			if s.rt.Client {
				err = refusedBy(err)
			}
			s.lost(err)
			return
		case streams := <-s.drains:
			drain = newDrainWatch(streams, s.rt.idleTimeout(), conn.ConnectionStats(), time.Now())
		case now := <-ticker.C:
			if addr := conn.RemoteAddr(); !s.rt.Client && addr.String() != remote { // the allow-list again
				remote = addr.String()
				s.engine.Send(s.self, pathMoved{addr: addr})
			}
			stats := conn.ConnectionStats()
			if stats.PacketsReceived != received {
				received, heard = stats.PacketsReceived, now
			}
			silent := now.Sub(heard) > silenceLimit(stats.SmoothedRTT)
			if drain != nil {
				if drain.done(stats, silent, now) {
					closing = "quicpool: connection drained after a switch-over"
					s.engine.Send(s.rt.supervisor, drained{shard: s.self, slot: s.slot})
					return
				}
				continue
			}
			if silent == suspect && now.Sub(reported) < time.Second {
				continue
			}
			m := liveness{shard: s.self, slot: s.slot, suspect: silent, heard: heard}
			s.rt.Tell(m)
			if silent != suspect {
				s.engine.Send(s.rt.supervisor, m)
			}
			suspect, reported = silent, now
		}
	}
}
