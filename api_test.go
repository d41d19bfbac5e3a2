package quicpool_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quicpool/quicpool"
	"github.com/stretchr/testify/require"
)

// trusting returns a client TLS config that trusts the server config's certificate.
func trusting(t *testing.T, server *tls.Config) *tls.Config {
	cert, err := x509.ParseCertificate(server.Certificates[0].Certificate[0])
	require.NoError(t, err)
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	return &tls.Config{RootCAs: roots}
}

// The idiomatic API: constructors that start the pool and return errors, and context-aware
// Accept and Get. NewClient verifies the server's certificate by default.
func TestNewClientNewServer(t *testing.T) {
	serverTLS := selfSigned(t)
	server, err := quicpool.NewServer("127.0.0.1:0", serverTLS, quicpool.WithCapacity(1, 16))
	require.NoError(t, err)
	defer server.Close()
	require.NotEmpty(t, server.Addr(), "NewServer returns once it listens")

	_, port, _ := net.SplitHostPort(server.Addr())
	client, err := quicpool.NewClient("localhost:"+port, quicpool.WithCapacity(4, 16),
		quicpool.WithTLSConfig(trusting(t, serverTLS)))
	require.NoError(t, err)
	defer client.Close()
	require.NoError(t, client.WaitReady(waitCtx(t), 4))
	require.GreaterOrEqual(t, client.Capacity(), 4, "starts at min, tuned up by use")

	ctx := waitCtx(t)
	sc, err := server.Accept(ctx)
	require.NoError(t, err)
	cc, err := client.Get(ctx, sc.ID())
	require.NoError(t, err)
	roundTrip(t, sc, cc, kib)
	sc.Close()
	cc.Close()
	require.Equal(t, "localhost", cc.ConnectionState().ServerName, "verified against the host in the address")
}

// Without a trusted certificate NewClient's default verification refuses a self-signed server.
func TestNewClientVerifiesByDefault(t *testing.T) {
	server, err := quicpool.NewServer("127.0.0.1:0", selfSigned(t))
	require.NoError(t, err)
	defer server.Close()
	client, err := quicpool.NewClient(server.Addr(), quicpool.WithRestartPolicy(
		quicpool.RestartPolicy{InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, MaxRestarts: 1}))
	require.NoError(t, err)
	defer client.Close()
	var verify *tls.CertificateVerificationError
	require.ErrorAs(t, client.WaitReady(waitCtx(t), 1), &verify)
}

func TestNewServerReturnsListenError(t *testing.T) {
	first, err := quicpool.NewServer("127.0.0.1:0", selfSigned(t))
	require.NoError(t, err)
	defer first.Close()
	_, err = quicpool.NewServer(first.Addr(), selfSigned(t))
	require.ErrorContains(t, err, "address already in use")
}

func TestOptionValidation(t *testing.T) {
	bad := map[string]quicpool.Option{
		"capacity zero":       quicpool.WithCapacity(0, 4),
		"capacity min > max":  quicpool.WithCapacity(5, 2),
		"interval zero":       quicpool.WithInterval(0, time.Second),
		"interval min > max":  quicpool.WithInterval(time.Second, time.Millisecond),
		"interval below 1ms":  quicpool.WithInterval(time.Microsecond, time.Second),
		"keep-alive zero":     quicpool.WithKeepAlive(0),
		"nil TLS config":      quicpool.WithTLSConfig(nil),
		"nil resolver":        quicpool.WithResolver(nil),
		"handshake timeout 0": quicpool.WithHandshakeTimeout(0),
		"local address":       quicpool.WithLocalAddr("nowhere"),
		"allowed client":      quicpool.WithAllowedClients("300.1.1.1"),
	}
	for name, opt := range bad {
		t.Run(name, func(t *testing.T) {
			var p *quicpool.Pool
			var err error
			if name == "allowed client" {
				p, err = quicpool.NewServer("127.0.0.1:0", selfSigned(t), opt)
			} else {
				p, err = quicpool.NewClient("127.0.0.1:1", opt)
			}
			require.ErrorIs(t, err, quicpool.ErrInvalidConfig)
			require.Nil(t, p)
		})
	}
	_, err := quicpool.NewClient("no-port")
	require.ErrorIs(t, err, quicpool.ErrInvalidConfig)
	_, err = quicpool.NewServer("127.0.0.1:0", nil)
	require.ErrorIs(t, err, quicpool.ErrInvalidConfig)
	_, err = quicpool.NewServer("", selfSigned(t))
	require.ErrorIs(t, err, quicpool.ErrInvalidConfig)
}

// Get and Accept honour cancellation and deadlines.
func TestContextCalls(t *testing.T) {
	server, err := quicpool.NewServer("127.0.0.1:0", selfSigned(t))
	require.NoError(t, err)
	defer server.Close()

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := server.Accept(ctx)
		errc <- err
	}()
	cancel()
	select {
	case err := <-errc:
		require.ErrorIs(t, err, context.Canceled)
	case <-waitCtx(t).Done():
		t.Fatal("Accept ignored its cancelled context")
	}

	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = server.Get(ctx, "0badcafe")
	require.ErrorIs(t, err, quicpool.ErrTimeout)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout())
}

// A pool made inside an actor with WithParent is that actor's child: it stops with it, its calls
// then fail with ErrClosed, and Close still returns with nothing left behind.
func TestPoolAsChildActor(t *testing.T) {
	baseline := runtime.NumGoroutine()
	server := startServer(t, 8)
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	require.NoError(t, err)

	other, err := actor.NewEngine(actor.NewEngineConfig())
	require.NoError(t, err)
	made := make(chan *quicpool.Pool, 1)
	mixed := make(chan error, 2)
	parent := engine.SpawnFunc(func(c *actor.Context) {
		if _, ok := c.Message().(actor.Started); ok {
			for _, opts := range [][]quicpool.Option{
				{quicpool.WithParent(c), quicpool.WithEngine(other)},
				{quicpool.WithEngine(other), quicpool.WithParent(c)},
			} {
				_, err := quicpool.NewClient(server.Addr(), opts...)
				mixed <- err
			}
			p, err := quicpool.NewClient(server.Addr(), quicpool.WithParent(c), quicpool.WithCapacity(2, 4),
				quicpool.WithTLSConfig(&tls.Config{InsecureSkipVerify: true}))
			if err != nil {
				panic(err)
			}
			made <- p
		}
	}, "tunnel")
	client := <-made
	for range 2 {
		require.ErrorIs(t, <-mixed, quicpool.ErrInvalidConfig, "a parent on one engine, the pool on another")
	}
	require.NoError(t, client.WaitReady(waitCtx(t), 2))
	require.True(t, strings.HasPrefix(client.Coordinator().ID, parent.ID+"/"), "the pool's actors are the parent's children: %s", client.Coordinator().ID)

	<-engine.Poison(parent).Done() // the parent stops, and the pool with it
	_, err = client.Get(waitCtx(t), quicpool.ControlID)
	require.ErrorIs(t, err, quicpool.ErrClosed)
	done := make(chan struct{})
	go func() { client.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(closeBound):
		t.Fatal("Close after the parent stopped did not return promptly")
	}
	server.Close()
	settleGoroutines(t, baseline)
}

const closeBound = 3 * time.Second

// The control stream takes no slot: when it arrives, the client opens the stream it counted for
// it at once, not on the next refill tick.
func TestFillDoesNotWaitForTick(t *testing.T) {
	server, err := quicpool.NewServer("127.0.0.1:0", selfSigned(t))
	require.NoError(t, err)
	defer server.Close()
	client, err := quicpool.NewClient(server.Addr(), quicpool.WithCapacity(32, 64),
		quicpool.WithInterval(time.Hour, time.Hour), quicpool.WithTLSConfig(&tls.Config{InsecureSkipVerify: true}))
	require.NoError(t, err)
	defer client.Close()
	require.NoError(t, client.WaitReady(waitCtx(t), 32), "full without a tick")
}

// A burst of callers that empties the pool raises a client's capacity at once, not by one stream
// per refill tick: right after a 64-wide burst on a pool at its minimum of 8, its capacity is at
// least 64 (the interval is an hour, so no tick could have done it).
func TestBurstRaisesCapacityAtOnce(t *testing.T) {
	server := startServer(t, 256)
	client := startClient(t, 8, 256, server.Addr(), quicpool.WithInterval(time.Hour, time.Hour))
	require.Equal(t, 8, client.Stats().Capacity)

	const burst = 64
	conns := make(chan net.Conn, burst)
	errs := make(chan error, burst)
	for range burst {
		go func() {
			_, c, err := client.IncomingGet(10 * time.Second)
			if err != nil {
				errs <- err
				return
			}
			conns <- c
		}()
	}
	for range burst {
		select {
		case c := <-conns:
			defer c.Close()
		case err := <-errs:
			t.Fatal(err)
		}
	}
	s := client.Stats()
	require.GreaterOrEqual(t, s.Capacity, burst, "capacity after the burst: %+v", s)
	require.LessOrEqual(t, s.Capacity, 256)
}

// CloseWrite half-closes a stream as *net.TCPConn does, through the interface proxy code checks
// for: the peer reads EOF, and this side still reads the peer's answer to its EOF.
func TestCloseWriteHalfCloses(t *testing.T) {
	server := startServer(t, 4)
	client := startClient(t, 4, 4, server.Addr())
	id, sc, err := server.IncomingGet(5 * time.Second)
	require.NoError(t, err)
	defer sc.Close()
	cc, err := client.OutgoingGet(id, 5*time.Second)
	require.NoError(t, err)
	defer cc.Close()

	hc, ok := sc.(interface{ CloseWrite() error })
	require.True(t, ok, "a pool stream offers CloseWrite")
	_, err = sc.Write([]byte("request"))
	require.NoError(t, err)
	require.NoError(t, hc.CloseWrite())

	got, err := io.ReadAll(cc)
	require.NoError(t, err, "the peer reads to EOF")
	require.Equal(t, "request", string(got))
	_, err = cc.Write([]byte("answer"))
	require.NoError(t, err)
	require.NoError(t, cc.(*quicpool.StreamConn).CloseWrite())
	got, err = io.ReadAll(sc)
	require.NoError(t, err, "the half-closed side still reads")
	require.Equal(t, "answer", string(got))
}
