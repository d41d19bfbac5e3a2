package quicpool_test

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool"
	"github.com/quicpool/quicpool/messages"
	"github.com/stretchr/testify/require"
)

// switchOver starts a server and a client (one connection each way) behind a relay, takes a
// stream pair and moves a KiB both ways, then silences the connection (its datagrams are dropped
// both ways) and waits until a standby took over and serves: the client drains the silent
// connection, and the server gave its slot to the standby.
func switchOver(t *testing.T, opts ...quicpool.Option) (server, client *quicpool.Pool, relay *relay, sc, cc net.Conn) {
	t.Helper()
	server = startServer(t, 8, opts...)
	relay = newRelay(t, server.Addr())
	client = startClient(t, 4, 8, relay.Addr(), opts...)
	sc, cc = tunnel(t, server, client, kib)
	t.Cleanup(func() { sc.Close(); cc.Close() })
	silence(t, server, client, relay)
	return server, client, relay, sc, cc
}

// silence drops the datagrams of the connections the relay carries now, and waits until the
// client's standby took over and serves.
func silence(t *testing.T, server, client *quicpool.Pool, relay *relay) {
	t.Helper()
	restarts := snapshot(client).Restarts
	relay.BlackholeSeen(true)
	waitFor(t, client, "a standby to take over", func(s messages.Stats) bool { return s.Restarts > restarts && s.ShardsUp == 1 })
	servesAgain(t, server, client, "the standby serves")
	require.Equal(t, 1, snapshot(client).Draining, "the silent connection drains")
}

// A connection that went silent with a stream in use, and that a standby took over from, keeps
// the stream: when the path comes back, the stream carries on as if nothing happened. The client
// closes the connection once the stream is done and the connection has been quiet for its idle
// timeout (6s here), and both sides account for every stream (the silent connection's idle
// streams are discarded, not lost).
func TestSwitchOverKeepsStreamsInUse(t *testing.T) {
	server, client, relay, sc, cc := switchOver(t, quicpool.WithKeepAlive(2*time.Second))
	require.Equal(t, 2, snapshot(server).ShardsUp, "the server keeps it beside the standby")

	relay.BlackholeSeen(false)
	payload := bytes.Repeat([]byte("drain"), 50_000)
	deadline := time.Now().Add(20 * time.Second)
	require.NoError(t, sc.SetDeadline(deadline))
	require.NoError(t, cc.SetDeadline(deadline))
	roundTrip(t, cc, sc, payload)

	require.NoError(t, cc.Close())
	require.NoError(t, sc.Close())
	s := waitFor(t, client, "the drained connection to close", func(s messages.Stats) bool { return s.Draining == 0 })
	require.Zero(t, s.Lost, "the drained connection's idle streams are discarded, not lost")
	require.NotZero(t, s.Discarded)
	requireAccounted(t, s, "after the drain")
	waitFor(t, server, "the server to see it closed", func(s messages.Stats) bool { return s.ShardsUp == 1 })
	requireAccounted(t, snapshot(server), "after the drain")
	require.NoError(t, tunnelOp(server, client, 5*time.Second), "the pool serves after the drain")
}

// A draining connection whose peer never answers again ends at its idle timeout (three
// keep-alive periods, 6s here), and its streams fail then.
func TestDrainingConnectionEndsAtItsIdleTimeout(t *testing.T) {
	_, client, _, _, cc := switchOver(t, quicpool.WithKeepAlive(2*time.Second))
	require.NoError(t, cc.SetReadDeadline(time.Now().Add(20*time.Second)))
	_, err := cc.Read(make([]byte, 1))
	var idle *quic.IdleTimeoutError
	require.ErrorAs(t, err, &idle, "the stream ends with its connection, not at its deadline")
	waitFor(t, client, "the dead connection to be forgotten", func(s messages.Stats) bool { return s.Draining == 0 })
}

// Closing a pool closes its draining connections and stops their shard actors: nothing is left
// behind, in the pool's engine (an embedder's) or in goroutines.
func TestCloseEndsDrainingConnections(t *testing.T) {
	baseline := runtime.NumGoroutine()
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	require.NoError(t, err)
	server, client, relay, sc, cc := switchOver(t, quicpool.WithEngine(engine))
	// A shard's actor ID is client<slot>.<incarnation>.<pool>; the pool's part ends the
	// coordinator's.
	first := "client0.1" + client.Coordinator().ID[strings.LastIndexByte(client.Coordinator().ID, '.'):]
	require.NotNil(t, engine.Registry.GetPID("quicpool", first), "the first connection's shard drains")
	client.Close()
	_, err = io.ReadAll(cc)
	require.Error(t, err, "the stream in use ends with its pool")
	require.Nil(t, engine.Registry.GetPID("quicpool", first), "the draining shard is stopped")
	server.Close()
	require.NoError(t, sc.Close())
	relay.Close()
	settleGoroutines(t, baseline)
}

// A stream whose request was sent and half-closed (CloseWrite) before the path went silent gets
// its reply when the path comes back, however long after the switch-over: the silence does not
// count as the quiet after which a draining connection is closed.
func TestHalfClosedStreamGetsItsReplyAfterASwitchOver(t *testing.T) {
	server, client, relay, sc, cc := switchOver(t)
	require.NoError(t, cc.(*quicpool.StreamConn).CloseWrite()) // its FIN waits for the path
	outage := time.NewTimer(2 * time.Second)                   // the old connection's outage lasts 2s more
	<-outage.C
	relay.BlackholeSeen(false)
	_, err := io.ReadAll(sc)
	require.NoError(t, err, "the request's end reaches the server")
	_, err = sc.Write([]byte("the reply"))
	require.NoError(t, err)
	require.NoError(t, sc.(*quicpool.StreamConn).CloseWrite())
	require.NoError(t, cc.SetReadDeadline(time.Now().Add(10*time.Second)))
	got, err := io.ReadAll(cc)
	require.NoError(t, err, "the reply reaches the client")
	require.Equal(t, "the reply", string(got))
	require.NoError(t, tunnelOp(server, client, 10*time.Second), "the pool serves")
}

// On the server, a connection whose client reconnected has no share of the pool, whether it
// answers again or not: once the drained connection answers, the client's new connection keeps
// all the streams the server holds (none are taken back for the old one's share).
func TestFormerConnectionHasNoShare(t *testing.T) {
	server, client, relay, _, _ := switchOver(t)
	require.NoError(t, client.WaitReady(waitCtx(t), 4))
	relay.BlackholeSeen(false)
	waitFor(t, server, "the old connection to answer again", func(s messages.Stats) bool {
		return len(s.Conns) == 2 && !s.Conns[0].Suspect && !s.Conns[1].Suspect
	})
	conns := snapshot(server).Conns
	slices.SortFunc(conns, func(a, b messages.ConnStats) int { return a.Since.Compare(b.Since) })
	require.Equal(t, []bool{true, false}, []bool{conns[0].Former, conns[1].Former}, "the old connection is listed as former, the new one not")
	require.NoError(t, client.WaitReady(waitCtx(t), 8), "the client fills up to maxCap from its new connection")
	reclaimed := snapshot(server).Reclaimed
	for range 3 { // the server's share check runs every second
		require.NoError(t, tunnelOp(server, client, 5*time.Second))
		require.NoError(t, client.WaitReady(waitCtx(t), 4))
		time.Sleep(500 * time.Millisecond) // an observation window: nothing may happen in it
	}
	require.Equal(t, reclaimed, snapshot(server).Reclaimed, "no stream taken back for the old connection's share")
}

// A client that reconnects may keep its old connection after all (it answered again before the
// new one was up, and the client closed the new one): the server, which gave the old
// connection's slot to the new one, gives it back when the new one ends, and serves the old one
// as before. Played with raw quic-go connections through a relay.
func TestFormerConnectionTakesItsSlotBack(t *testing.T) {
	server := startServer(t, 2) // one slot per client address
	relay := newRelay(t, server.Addr())
	dial := func() *quic.Conn {
		udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		require.NoError(t, err)
		tr := &quic.Transport{Conn: udp}
		t.Cleanup(func() { tr.Close() })
		conn, err := tr.Dial(waitCtx(t), mustResolve(t, relay.Addr()),
			&tls.Config{InsecureSkipVerify: true, NextProtos: []string{quicpool.ALPN}},
			&quic.Config{MaxIdleTimeout: time.Minute, KeepAlivePeriod: 100 * time.Millisecond})
		require.NoError(t, err)
		return conn
	}
	// takeID opens a stream on conn, sends the handshake byte and reads the ID the server issues.
	takeID := func(conn *quic.Conn) error {
		s, err := conn.OpenStreamSync(waitCtx(t))
		if err != nil {
			return err
		}
		if _, err := s.Write([]byte{0}); err != nil {
			return err
		}
		_ = s.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = io.ReadFull(s, make([]byte, 4))
		return err
	}

	old := dial()
	require.NoError(t, takeID(old))
	relay.BlackholeSeen(true)
	waitFor(t, server, "the old connection to go silent", func(s messages.Stats) bool { return len(s.Conns) == 1 && s.Conns[0].Suspect })
	replacement := dial()
	waitFor(t, server, "the new connection to take the slot", func(s messages.Stats) bool { return s.ShardsUp == 2 })
	relay.BlackholeSeen(false)
	waitFor(t, server, "the old connection to answer again", func(s messages.Stats) bool {
		return len(s.Conns) == 2 && !s.Conns[0].Suspect && !s.Conns[1].Suspect
	})
	require.NoError(t, replacement.CloseWithError(0, "the client keeps its old connection"))
	waitFor(t, server, "the new connection to be gone", func(s messages.Stats) bool { return s.ShardsUp == 1 })
	require.False(t, snapshot(server).Conns[0].Former, "the old connection holds its slot again")
	require.NoError(t, takeID(old), "the old connection is served again")
}

// servesAgain fails the test unless a tunnel op succeeds within 10s.
func servesAgain(t *testing.T, server, client *quicpool.Pool, what string) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if err = tunnelOp(server, client, time.Second); err == nil {
			return
		}
	}
	require.NoError(t, err, what)
}

// endConnectionOfAnIdleStream closes, on the server, the connection of one of its idle streams.
func endConnectionOfAnIdleStream(t *testing.T, server *quicpool.Pool) {
	t.Helper()
	reply := make(chan messages.Stream, 1)
	server.Engine().Send(server.Coordinator(), messages.Get{Deadline: time.Now().Add(5 * time.Second), Reply: reply})
	got := <-reply
	require.NoError(t, got.Err)
	require.NoError(t, got.Conn.CloseWithError(0, "test: the new connection ends"))
}

// The connection that took over ends while the one it took over from drains, silent or
// answering again: the client closes the draining one too, and its redial gets in at once
// instead of being refused while the old connection holds the client's place on the server.
func TestNewConnectionEndingWhileTheOldDrains(t *testing.T) {
	for _, answering := range []bool{false, true} {
		t.Run(map[bool]string{false: "old silent", true: "old answering"}[answering], func(t *testing.T) {
			server, client, relay, _, _ := switchOver(t)
			if answering {
				relay.BlackholeSeen(false)
				waitFor(t, server, "the old connection to answer again", func(s messages.Stats) bool {
					return len(s.Conns) == 2 && !s.Conns[0].Suspect && !s.Conns[1].Suspect
				})
			}
			endConnectionOfAnIdleStream(t, server)
			servesAgain(t, server, client, "the client gets back in")
		})
	}
}

// A client that stops hearing its server while the server still hears it switches over to a
// standby the server then refuses (the old connection answers it): the client gives up the
// draining connection, and gets back in.
func TestStandbyRefusedAfterTheSwitchOver(t *testing.T) {
	server := startServer(t, 8)
	relay := newRelay(t, server.Addr())
	client := startClient(t, 4, 8, relay.Addr())
	sc, cc := tunnel(t, server, client, kib)
	t.Cleanup(func() { sc.Close(); cc.Close() })
	restarts := snapshot(client).Restarts
	relay.BlackholeSeenToClients(true)
	waitFor(t, client, "the switch-over", func(s messages.Stats) bool { return s.Restarts > restarts })
	relay.BlackholeSeenToClients(false)
	servesAgain(t, server, client, "the client gets back in")
}
