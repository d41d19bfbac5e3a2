package quicpool_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool"
	"github.com/quicpool/quicpool/messages"
	"github.com/stretchr/testify/require"
)

// hostileServer is a raw quic-go server that speaks ALPN np-quic, accepts every connection and
// stream, reads each stream's handshake byte, and then does to the stream what answer says. It
// counts the streams it accepted.
type hostileServer struct {
	addr    string
	streams atomic.Int64
}

func startHostileServer(t *testing.T, conf *quic.Config, answer func(s *quic.Stream)) *hostileServer {
	t.Helper()
	tlsConf := selfSigned(t)
	tlsConf.NextProtos = []string{quicpool.ALPN}
	if conf == nil {
		conf = &quic.Config{}
	}
	conf.MaxIdleTimeout, conf.KeepAlivePeriod = 10*time.Second, time.Second
	ln, err := quic.ListenAddr("127.0.0.1:0", tlsConf, conf)
	require.NoError(t, err)
	h := &hostileServer{addr: ln.Addr().String()}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			conn, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.CloseWithError(0, "")
				for {
					s, err := conn.AcceptStream(ctx)
					if err != nil {
						return
					}
					h.streams.Add(1)
					wg.Go(func() {
						if _, err := s.Read(make([]byte, 1)); err == nil {
							answer(s)
						}
					})
				}
			})
		}
	})
	return h
}

// maxOpened is the bound on the streams a client of capacity 16 opens in the 5s after its first
// cut-off and reconnect against a hostile server, with 200ms handshake timeouts where they matter:
// 24 times its capacity. Without these rules it opens thousands a second and never reconnects.
const maxOpened = 24 * 16

func freshID() []byte {
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	return id
}

// distrustingClient starts a client pool of capacity 16 against addr, with an engine whose events
// the test reads.
func distrustingClient(t *testing.T, addr string, opts ...quicpool.Option) (*quicpool.Pool, chan messages.Event) {
	t.Helper()
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	require.NoError(t, err)
	events := subscribe(t, engine)
	opts = append([]quicpool.Option{quicpool.WithTLSConfig(&tls.Config{InsecureSkipVerify: true}),
		quicpool.WithCapacity(16, 16), quicpool.WithEngine(engine)}, opts...)
	client, err := quicpool.NewClient(addr, opts...)
	require.NoError(t, err)
	t.Cleanup(client.Close)
	return client, events
}

// requireCutOff checks that the client closed its connection for a protocol violation naming
// what, reconnected, kept its goroutines flat, and opened at most bound streams within 5s.
func requireCutOff(t *testing.T, h *hostileServer, client *quicpool.Pool, events chan messages.Event, what string, bound int64) {
	t.Helper()
	baseline, heapBefore := runtime.NumGoroutine(), heapInUse()
	ev := waitEvent(t, events, messages.EventShardFailed)
	require.ErrorIs(t, ev.Err, quicpool.ErrViolation)
	require.ErrorContains(t, ev.Err, what)
	waitFor(t, client, "a reconnect", func(s messages.Stats) bool { return s.Violations >= 1 && s.Restarts >= 1 })
	before := h.streams.Load() // however long the cut-off took on a loaded machine
	deadline := time.After(5 * time.Second)
	peak := 0
	for wait := true; wait; {
		select {
		case <-deadline:
			wait = false
		case <-time.After(50 * time.Millisecond): // sampling the goroutine count
			peak = max(peak, runtime.NumGoroutine())
		}
	}
	opened := h.streams.Load() - before
	t.Logf("%d streams opened before the reconnect, %d in the 5s after it, %d violations, goroutines %d -> peak %d",
		before, opened, client.Stats().Violations, baseline, peak)
	require.LessOrEqual(t, opened, bound, "the client opens streams at a bounded pace")
	require.Less(t, peak, baseline+64, "goroutines stay flat")
	heapAfter := heapInUse()
	t.Logf("heap in use %d KiB -> %d KiB", heapBefore>>10, heapAfter>>10)
	require.Less(t, heapAfter, heapBefore+16<<20, "the heap stays flat")
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// A server that answers every handshake with the control ID is cut off on the second one.
func TestServerIssuingControlIDTwiceIsCutOff(t *testing.T) {
	h := startHostileServer(t, nil, func(s *quic.Stream) { _, _ = s.Write([]byte{0, 0, 0, 0}) })
	client, events := distrustingClient(t, h.addr)
	requireCutOff(t, h, client, events, "00000000", maxOpened)
}

// A server that gives a fresh ID and then stops reading every stream (STOP_SENDING 0, as an
// application closing it would) is cut off once most fresh streams are gone before any is taken;
// the streams it closed never pile up.
func TestServerClosingEveryStreamIsCutOff(t *testing.T) {
	h := startHostileServer(t, nil, func(s *quic.Stream) {
		_, _ = s.Write(freshID())
		time.Sleep(20 * time.Millisecond) // the hostile behaviour: a close 20ms after the ID
		s.CancelRead(0)
	})
	client, events := distrustingClient(t, h.addr)
	requireCutOff(t, h, client, events, "before any was taken", maxOpened)
	require.LessOrEqual(t, client.Stats().PeerClosed, 16, "peer-closed streams are capped at capacity")
}

// The same with a reset that says the server's pool discarded the stream.
func TestServerDiscardingEveryStreamIsCutOff(t *testing.T) {
	h := startHostileServer(t, nil, func(s *quic.Stream) {
		_, _ = s.Write(freshID())
		time.Sleep(20 * time.Millisecond)
		s.CancelRead(1)
		s.CancelWrite(1)
	})
	client, events := distrustingClient(t, h.addr)
	requireCutOff(t, h, client, events, "before any was taken", maxOpened)
}

// A server that gives one stream of credit and then none: opens wait at most the handshake
// timeout, and a connection on which no handshake completes for three of them is cut off.
func TestServerWithoutCreditIsCutOff(t *testing.T) {
	h := startHostileServer(t, &quic.Config{MaxIncomingStreams: 1}, func(s *quic.Stream) { _, _ = s.Write(freshID()) })
	client, events := distrustingClient(t, h.addr, quicpool.WithHandshakeTimeout(200*time.Millisecond))
	requireCutOff(t, h, client, events, "no stream credit", maxOpened)
}

// A server that accepts streams and never answers their handshakes is cut off after three
// handshake timeouts.
func TestServerNeverAnsweringIsCutOff(t *testing.T) {
	h := startHostileServer(t, nil, func(s *quic.Stream) {})
	client, events := distrustingClient(t, h.addr, quicpool.WithHandshakeTimeout(200*time.Millisecond))
	requireCutOff(t, h, client, events, "no stream handshake completed", maxOpened)
}

// An honest quicpool server that flushes its pool before the client took any stream is not
// mistaken for a hostile one.
func TestServerFlushIsNoViolation(t *testing.T) {
	server := startServer(t, 16)
	client := startClient(t, 16, 16, server.Addr())
	require.NoError(t, server.WaitReady(waitCtx(t), 16))
	for range 2 {
		server.Flush()
		require.NoError(t, server.WaitReady(waitCtx(t), 16))
		require.NoError(t, client.WaitReady(waitCtx(t), 16))
	}
	s := client.Stats()
	require.Zero(t, s.Violations, "%+v", s)
	require.Zero(t, s.Restarts, "%+v", s)
	sc, cc := tunnel(t, server, client, kib)
	sc.Close()
	cc.Close()
}
