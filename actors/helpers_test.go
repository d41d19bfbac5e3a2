package actors

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool/internal/core"
	"github.com/quicpool/quicpool/messages"
	"github.com/stretchr/testify/require"
)

// bound is the limit of every wait for an event in these tests.
const bound = 10 * time.Second

// recv waits (bounded) for one value on ch.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	timer := time.NewTimer(bound)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("timed out after %v waiting for %s", bound, what)
		panic("unreachable")
	}
}

// waitDone waits (bounded) for ctx to be done, e.g. the context engine.Poison returns.
func waitDone(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	timer := time.NewTimer(bound)
	defer timer.Stop()
	select {
	case <-ctx.Done():
	case <-timer.C:
		t.Fatalf("timed out after %v waiting for %s", bound, what)
	}
}

func newEngine(t *testing.T) *actor.Engine {
	t.Helper()
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	require.NoError(t, err)
	return engine
}

// poolName is a name for the pool's actor IDs, unique per test; it holds no "/" (the actor IDs'
// separator).
func poolName(t *testing.T) string {
	return strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
}

// testPolicy is a deterministic restart policy: fixed delays, a per-slot limit of restarts
// (Exceeded once a slot's restart list holds more than limit; never if limit <= 0), and a
// connection healthy once up for healthy (never if 0). attempts, if set, gets the attempt number
// of every Backoff asked for.
type testPolicy struct {
	backoff, ceiling time.Duration
	limit            int
	healthy          time.Duration
	attempts         chan int
}

func (p testPolicy) Backoff(attempt int) time.Duration {
	if p.attempts != nil {
		p.attempts <- attempt
	}
	return p.backoff
}
func (p testPolicy) Ceiling() time.Duration { return p.ceiling }
func (p testPolicy) Exceeded(restarts []time.Time, _ time.Time) bool {
	return p.limit > 0 && len(restarts) > p.limit
}
func (p testPolicy) Healthy(up time.Duration) bool { return p.healthy > 0 && up >= p.healthy }

// testConfig is a pool configuration for driving the actors directly: one shard slot, MinCap 2,
// MaxCap 4, intervals of an hour (no tick interferes with a test), 5ms restart delays.
func testConfig(t *testing.T, client bool) *core.Config {
	return &core.Config{
		Client:            client,
		MinCap:            2,
		MaxCap:            4,
		MinIvl:            time.Hour,
		MaxIvl:            time.Hour,
		Shards:            1,
		PerShard:          128,
		Policy:            testPolicy{backoff: 5 * time.Millisecond, ceiling: 5 * time.Millisecond},
		HandshakeTimeout:  bound,
		HoldTimeout:       bound,
		Ctx:               context.Background(),
		Log:               slog.New(slog.DiscardHandler),
		Go:                func(f func()) { go f() },
		Name:              poolName(t),
		Takes:             make(chan *core.Take, 16),
		Final:             &messages.Stats{},
		Stopped:           make(chan struct{}),
		SupervisorStopped: make(chan struct{}),
	}
}

// spawnRecorder spawns an actor that forwards every message but the lifecycle ones to the
// returned channel: a fake shard, or a fake coordinator.
func spawnRecorder(t *testing.T, engine *actor.Engine, id string) (*actor.PID, chan any) {
	t.Helper()
	got := make(chan any, 4096)
	pid := engine.SpawnFunc(func(c *actor.Context) {
		switch c.Message().(type) {
		case actor.Initialized, actor.Started, actor.Stopped:
			return
		}
		select {
		case got <- c.Message():
		default: // nobody reads any more (a restart loop outlives its test's reads)
		}
	}, "recorder", actor.WithID(id))
	t.Cleanup(func() { waitDone(t, engine.Poison(pid), "the recorder "+id+" to stop") })
	return pid, got
}

// recordCoordinator stands in for rt's coordinator: what the pool's actors tell it
// (core.Config.Tell) and what is sent to its actor both reach the returned channel, and, like
// spawnRecorder, it drops what nobody reads any more. Once the test ends, what they tell it is dropped, as it is
// once a coordinator has stopped.
func recordCoordinator(t *testing.T, engine *actor.Engine, rt *runtime) chan any {
	t.Helper()
	var got chan any
	rt.coordinator, got = spawnRecorder(t, engine, "coordinator."+rt.Name)
	forwarded := make(chan struct{})
	go func() {
		defer close(forwarded)
		for {
			select {
			case m := <-rt.Mail:
				select {
				case got <- m:
				default:
				}
			case <-rt.MailClosed:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(rt.MailClosed)
		<-forwarded
	})
	return got
}

// loopback is one real QUIC connection over 127.0.0.1 with n bidirectional streams opened on it.
type loopback struct {
	conn     *quic.Conn     // the dialing side, whose streams the tests hand to the coordinator
	streams  []*quic.Stream // opened by conn, in order
	peerConn *quic.Conn     // the accepting side
	peer     []*quic.Stream // the accepting side of streams[i]
}

// quicStreams starts a QUIC listener and dialer on loopback (TLS 1.3, a self-signed certificate,
// ALPN "np-quic"), opens n bidirectional streams on one connection and writes a byte on each so
// that the peer accepts it. The connections are closed when the test ends.
func quicStreams(t *testing.T, n int) loopback {
	t.Helper()
	serverTLS, clientTLS := loopbackTLS(t)
	ln, err := quic.ListenAddr("127.0.0.1:0", serverTLS, &quic.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	conn, err := quic.DialAddr(ctx, ln.Addr().String(), clientTLS, &quic.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.CloseWithError(0, "test over") })
	peerConn, err := ln.Accept(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = peerConn.CloseWithError(0, "test over") })

	lb := loopback{conn: conn, streams: make([]*quic.Stream, n), peerConn: peerConn, peer: make([]*quic.Stream, n)}
	index := make(map[quic.StreamID]int, n)
	for i := range n {
		s, err := conn.OpenStreamSync(ctx)
		require.NoError(t, err)
		_, err = s.Write([]byte{0})
		require.NoError(t, err)
		lb.streams[i] = s
		index[s.StreamID()] = i
	}
	for range n {
		ps, err := peerConn.AcceptStream(ctx)
		require.NoError(t, err)
		var b [1]byte
		_, err = io.ReadFull(ps, b[:])
		require.NoError(t, err)
		i, ok := index[ps.StreamID()]
		require.True(t, ok, "the peer accepted a stream nobody opened: %d", ps.StreamID())
		lb.peer[i] = ps
	}
	return lb
}

// loopbackTLS returns a server TLS config with a fresh self-signed certificate for 127.0.0.1 and
// a client config that trusts exactly that certificate, both TLS 1.3 with ALPN "np-quic".
func loopbackTLS(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	server = &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{"np-quic"},
	}
	client = &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13, NextProtos: []string{"np-quic"}}
	return server, client
}

// testID is the i-th of the IDs the tests file streams under: never the control ID.
func testID(i int) string { return fmt.Sprintf("%08x", 0x100+i) }
