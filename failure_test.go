package quicpool_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"math"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool"
	"github.com/quicpool/quicpool/messages"
	"github.com/stretchr/testify/require"
)

// deadAddr returns a loopback UDP address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	addr := udp.LocalAddr().String()
	require.NoError(t, udp.Close())
	return addr
}

func within(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// requireTimeoutBecause checks that err is a timeout that says why the pool had no connection.
func requireTimeoutBecause(t *testing.T, err error, cause any) {
	t.Helper()
	require.ErrorIs(t, err, quicpool.ErrTimeout)
	require.ErrorIs(t, err, quicpool.ErrUnavailable, "the timeout says the pool has no connection")
	require.ErrorAs(t, err, cause, "and why")
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	require.True(t, ne.Timeout())
}

// A client whose server does not answer: every call that runs out of time says why, and Err says
// it while the pool keeps retrying.
func TestDeadServerSaysWhy(t *testing.T) {
	client, err := quicpool.NewClient(deadAddr(t), quicpool.WithTLSConfig(&tls.Config{InsecureSkipVerify: true}),
		quicpool.WithHandshakeTimeout(200*time.Millisecond))
	require.NoError(t, err)
	defer client.Close()
	waitFor(t, client, "the first dial to fail", func(s messages.Stats) bool { return s.Err != nil })

	var idle *quic.IdleTimeoutError
	err = client.WaitReady(within(t, time.Second), 1)
	requireTimeoutBecause(t, err, &idle)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	_, err = client.Get(within(t, 300*time.Millisecond), quicpool.ControlID)
	requireTimeoutBecause(t, err, &idle)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	_, err = client.OutgoingGet(quicpool.ControlID, 300*time.Millisecond)
	requireTimeoutBecause(t, err, &idle)

	_, _, err = client.IncomingGet(0) // nothing idle now: a timeout at once, with the reason
	requireTimeoutBecause(t, err, &idle)

	require.ErrorIs(t, client.Err(), quicpool.ErrUnavailable)
	require.ErrorAs(t, client.Err(), &idle)
	require.False(t, client.Stats().FailFast, "a timeout may be temporary: calls wait for the server")
}

// freezingHandler is a slog.Handler that blocks the goroutine logging the first record whose
// message starts with prefix, until release is closed; frozen is closed when it blocks. Every
// other record is dropped.
type freezingHandler struct {
	prefix          string
	first           chan struct{} // holds one token: the first matching record takes it
	frozen, release chan struct{}
}

func newFreezingHandler(prefix string) *freezingHandler {
	h := &freezingHandler{prefix: prefix, first: make(chan struct{}, 1), frozen: make(chan struct{}), release: make(chan struct{})}
	h.first <- struct{}{}
	return h
}

func (h *freezingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *freezingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *freezingHandler) WithGroup(string) slog.Handler            { return h }

func (h *freezingHandler) Handle(_ context.Context, r slog.Record) error {
	if !strings.HasPrefix(r.Message, h.prefix) {
		return nil
	}
	select {
	case <-h.first:
		close(h.frozen)
		<-h.release
	default:
	}
	return nil
}

// A call that times out while the coordinator cannot answer (frozen here in its Receive, by a
// logger that blocks when the pool becomes unavailable) fails at its timeout: it does not wait
// for the coordinator to say why.
func TestTimeoutDoesNotWaitForAFrozenCoordinator(t *testing.T) {
	server := startServer(t, 4)
	h := newFreezingHandler("pool unavailable")
	client, err := quicpool.NewClient(server.Addr(), quicpool.WithLogger(slog.New(h))) // verifies: the self-signed server fails
	require.NoError(t, err)
	defer client.Close()
	defer close(h.release) // before Close, which waits for the coordinator
	select {
	case <-h.frozen:
	case <-time.After(30 * time.Second):
		t.Fatal("the pool never became unavailable")
	}

	done := make(chan error, 2)
	go func() {
		_, err := client.OutgoingGet(quicpool.ControlID, 100*time.Millisecond)
		done <- err
	}()
	go func() {
		done <- client.WaitReady(within(t, 100*time.Millisecond), 1)
	}()
	for range 2 {
		select {
		case err := <-done:
			require.ErrorIs(t, err, quicpool.ErrTimeout)
			require.NotErrorIs(t, err, quicpool.ErrUnavailable, "the frozen coordinator could not say why")
		case <-time.After(10 * time.Second):
			t.Fatal("a call outlived its timeout by 10s: it waited for the frozen coordinator")
		}
	}
}

// A server whose certificate does not verify is reported on the first failure, whatever the
// number of connections: Err says so and every call fails at once with ErrUnavailable wrapping
// the verification error. So is an address no dial can use (a resolver's, with port 0).
func TestCertificateFailureFailsFast(t *testing.T) {
	server := startServer(t, 8)
	for _, c := range []struct {
		name   string
		shards int
		opts   []quicpool.Option
	}{
		{"one connection", 1, nil},
		{"eight connections", 8, []quicpool.Option{quicpool.WithCapacity(64, 1024)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			client, err := quicpool.NewClient(server.Addr(), c.opts...) // verifies by default; the server is self-signed
			require.NoError(t, err)
			defer client.Close()
			require.Equal(t, c.shards, client.ShardCount())

			var verify *tls.CertificateVerificationError
			err = client.WaitReady(within(t, 30*time.Second), 1)
			require.ErrorIs(t, err, quicpool.ErrUnavailable)
			require.ErrorAs(t, err, &verify)
			require.NotErrorIs(t, err, quicpool.ErrTimeout, "it failed at once, not when the context ran out")

			_, err = client.Get(within(t, 30*time.Second), quicpool.ControlID)
			require.ErrorIs(t, err, quicpool.ErrUnavailable)
			require.ErrorAs(t, err, &verify)
			require.NotErrorIs(t, err, quicpool.ErrTimeout)

			require.ErrorAs(t, client.Err(), &verify)
			require.True(t, client.Stats().FailFast)
		})
	}
	t.Run("a resolver's address with port 0", func(t *testing.T) {
		client, err := quicpool.NewClient(server.Addr(), quicpool.WithResolver(quicpool.StaticAddr("127.0.0.1:0")))
		require.NoError(t, err)
		defer client.Close()
		err = client.WaitReady(within(t, 30*time.Second), 1)
		require.ErrorIs(t, err, quicpool.ErrUnavailable)
		var addr *net.AddrError
		require.ErrorAs(t, err, &addr, "the address is the failure")
		require.NotErrorIs(t, err, quicpool.ErrTimeout, "it failed at once, not when the context ran out")
	})
	t.Run("TLS code 2", func(t *testing.T) {
		client := quicpool.NewClientPool(1, 1, 0, 0, 0, "2", "localhost", quicpool.StaticAddr(server.Addr()))
		go client.ClientManager()
		defer client.Close()
		waitFor(t, client, "the first dial to fail", func(s messages.Stats) bool { return s.Err != nil })
		_, err := client.OutgoingGet(quicpool.ControlID, 30*time.Second)
		var verify *tls.CertificateVerificationError
		require.ErrorAs(t, err, &verify)
		require.NotErrorIs(t, err, quicpool.ErrTimeout, "it failed at once, not after 30s")
	})
}

// Requests no pool can satisfy are errors at once.
func TestImpossibleRequests(t *testing.T) {
	server := startServer(t, 4)

	err := server.WaitReady(within(t, 30*time.Second), 100000)
	require.ErrorIs(t, err, quicpool.ErrInvalidArgument)
	require.NotErrorIs(t, err, quicpool.ErrTimeout, "at once, not when the context ran out")
	require.ErrorIs(t, server.WaitReady(within(t, 30*time.Second), -1), quicpool.ErrInvalidArgument)

	// A possible request that runs out of time is a timeout like every other, with no cause: the
	// server listens, no client came.
	err = server.WaitReady(within(t, 100*time.Millisecond), 4)
	require.ErrorIs(t, err, quicpool.ErrTimeout)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NotErrorIs(t, err, quicpool.ErrUnavailable)

	_, err = quicpool.NewClient("127.0.0.1:1", quicpool.WithCapacity(100000, 100000))
	require.ErrorIs(t, err, quicpool.ErrInvalidConfig)
	require.ErrorContains(t, err, "8192")
	_, err = quicpool.NewServer("127.0.0.1:0", selfSigned(t), quicpool.WithCapacity(1, quicpool.MaxCapacity+1))
	require.ErrorIs(t, err, quicpool.ErrInvalidConfig)
	pool := quicpool.NewClientPool(1, 100000, 0, 0, 0, "0", "", quicpool.StaticAddr("127.0.0.1:1"))
	defer pool.Close()
	require.ErrorIs(t, pool.Err(), quicpool.ErrInvalidConfig)
	_, err = pool.OutgoingGet(quicpool.ControlID, time.Minute)
	require.ErrorIs(t, err, quicpool.ErrInvalidConfig)
	big := quicpool.NewServerPool(quicpool.MaxCapacity+1, "", selfSigned(t), "127.0.0.1:0", 0)
	defer big.Close()
	require.ErrorIs(t, big.Err(), quicpool.ErrInvalidConfig)

	// Options override the positional arguments, an invalid capacity included.
	fixed := quicpool.NewClientPool(1, 100000, 0, 0, 0, "0", "", quicpool.StaticAddr("127.0.0.1:1"),
		quicpool.WithCapacity(1, 64))
	defer fixed.Close()
	require.NoError(t, fixed.Err())
	require.Equal(t, 1, fixed.ShardCount())
	fixedServer := quicpool.NewServerPool(quicpool.MaxCapacity+1, "", selfSigned(t), "127.0.0.1:0", 0,
		quicpool.WithCapacity(1, 64))
	defer fixedServer.Close()
	require.NoError(t, fixedServer.Err())
	require.Equal(t, 1, fixedServer.ShardCount())
}

// One rule for options on every constructor: nil, invalid, or for the other side is an error.
func TestOptionRules(t *testing.T) {
	tlsConf := selfSigned(t)
	invalid := map[string]error{}
	_, invalid["nil option, client"] = quicpool.NewClient("127.0.0.1:1", nil)
	_, invalid["nil option, server"] = quicpool.NewServer("127.0.0.1:0", tlsConf, quicpool.WithKeepAlive(time.Second), nil)
	_, invalid["negative backoff"] = quicpool.NewClient("127.0.0.1:1",
		quicpool.WithRestartPolicy(quicpool.RestartPolicy{InitialBackoff: -1, MaxBackoff: -5}))
	_, invalid["max below initial"] = quicpool.NewClient("127.0.0.1:1",
		quicpool.WithRestartPolicy(quicpool.RestartPolicy{InitialBackoff: 2 * time.Second, MaxBackoff: time.Second}))
	_, invalid["shrinking multiplier"] = quicpool.NewServer("127.0.0.1:0", tlsConf,
		quicpool.WithRestartPolicy(quicpool.RestartPolicy{Multiplier: 0.5}))
	_, invalid["jitter above 1"] = quicpool.NewClient("127.0.0.1:1", quicpool.WithRestartPolicy(quicpool.RestartPolicy{Jitter: 2}))
	_, invalid["server option on a client"] = quicpool.NewClient("127.0.0.1:1", quicpool.WithAllowedClients("10.0.0.1"))
	_, invalid["client option on a server"] = quicpool.NewServer("127.0.0.1:0", tlsConf, quicpool.WithInterval(time.Second, time.Second))
	_, invalid["unparsable client address"] = quicpool.NewServer("127.0.0.1:0", tlsConf, quicpool.WithAllowedClients("not-an-ip"))
	_, invalid["reset key on a client"] = quicpool.NewClient("127.0.0.1:1", quicpool.WithStatelessResetKey(quic.StatelessResetKey{}))
	_, invalid["client CAs on a client"] = quicpool.NewClient("127.0.0.1:1", quicpool.WithClientCAs(x509.NewCertPool()))
	_, invalid["client certificate on a server"] = quicpool.NewServer("127.0.0.1:0", tlsConf,
		quicpool.WithClientCertificate(tlsConf.Certificates[0]))
	_, invalid["unparsable client fingerprint"] = quicpool.NewServer("127.0.0.1:0", tlsConf, quicpool.WithClientFingerprints("zz"))
	_, invalid["nil logger"] = quicpool.NewClient("127.0.0.1:1", quicpool.WithLogger(nil))
	_, invalid["logger with no handler"] = quicpool.NewClient("127.0.0.1:1", quicpool.WithLogger(&slog.Logger{}))
	_, invalid["NaN multiplier"] = quicpool.NewClient("127.0.0.1:1", quicpool.WithRestartPolicy(quicpool.RestartPolicy{Multiplier: math.NaN()}))
	_, invalid["infinite multiplier"] = quicpool.NewClient("127.0.0.1:1", quicpool.WithRestartPolicy(quicpool.RestartPolicy{Multiplier: math.Inf(1)}))
	_, invalid["NaN jitter"] = quicpool.NewClient("127.0.0.1:1", quicpool.WithRestartPolicy(quicpool.RestartPolicy{Jitter: math.NaN()}))
	_, invalid["empty client address"] = quicpool.NewServer("127.0.0.1:0", tlsConf, quicpool.WithAllowedClients(""))
	_, invalid["all-zero reset key"] = quicpool.NewServer("127.0.0.1:0", tlsConf, quicpool.WithStatelessResetKey(quic.StatelessResetKey{}))
	_, invalid["keep-alive above 24h"] = quicpool.NewServer("127.0.0.1:0", tlsConf, quicpool.WithKeepAlive(100*365*24*time.Hour))
	tls12, keyless, empty := tlsConf.Clone(), tlsConf.Clone(), tlsConf.Clone()
	tls12.MaxVersion = tls.VersionTLS12
	keyless.Certificates = []tls.Certificate{{Certificate: tlsConf.Certificates[0].Certificate}}
	empty.Certificates = []tls.Certificate{{}}
	_, invalid["server port 0"] = quicpool.NewClient("127.0.0.1:0")
	_, invalid["fixed local port"] = quicpool.NewClient("127.0.0.1:1", quicpool.WithLocalAddr("127.0.0.1:4000"))
	_, invalid["TLS 1.2 server"] = quicpool.NewServer("127.0.0.1:0", tls12)
	_, invalid["server certificate without its key"] = quicpool.NewServer("127.0.0.1:0", keyless)
	_, invalid["empty server certificate"] = quicpool.NewServer("127.0.0.1:0", empty)
	_, invalid["TLS 1.2 client"] = quicpool.NewClient("127.0.0.1:1", quicpool.WithTLSConfig(&tls.Config{MaxVersion: tls.VersionTLS12}))
	_, invalid["client certificate without its key"] = quicpool.NewClient("127.0.0.1:1", quicpool.WithTLSConfig(keyless))
	for _, pool := range map[string]*quicpool.Pool{
		"client option on a NodePass server": quicpool.NewServerPool(4, "", tlsConf, "127.0.0.1:0", 0,
			quicpool.WithResolver(quicpool.StaticAddr("x:1"))),
		"server option on a NodePass client": quicpool.NewClientPool(1, 1, 0, 0, 0, "0", "", quicpool.StaticAddr("127.0.0.1:1"),
			quicpool.WithAllowedClients("not-an-ip")),
		"nil option on a NodePass client":                quicpool.NewClientPool(1, 1, 0, 0, 0, "0", "", quicpool.StaticAddr("127.0.0.1:1"), nil),
		"a bare 1 (1ns) as a NodePass client's interval": quicpool.NewClientPool(1, 1, 1, 5, 0, "0", "", quicpool.StaticAddr("127.0.0.1:1")),
		"keep-alive above 24h on a NodePass server":      quicpool.NewServerPool(4, "", tlsConf, "127.0.0.1:0", 25*time.Hour),
	} {
		defer pool.Close()
		_, err := pool.OutgoingGet(quicpool.ControlID, time.Minute)
		invalid[pool.Err().Error()] = err
	}
	for name, err := range invalid {
		require.ErrorIs(t, err, quicpool.ErrInvalidConfig, name)
	}
	require.ErrorContains(t, invalid["server option on a client"], "WithAllowedClients applies to server pools only")

	// The documented "none" values stay valid.
	p, err := quicpool.NewClient("127.0.0.1:1", quicpool.WithRestartPolicy(quicpool.RestartPolicy{Jitter: -1, MaxRestarts: -1}))
	require.NoError(t, err)
	p.Close()
}

// Stats are consistent: capacity bounds as configured, no caller that gave up counted as
// waiting, and after Close the pool's last state with Err == ErrClosed.
func TestStatsAreConsistent(t *testing.T) {
	server, err := quicpool.NewServer("127.0.0.1:0", selfSigned(t), quicpool.WithCapacity(1, 1024))
	require.NoError(t, err)
	defer server.Close()
	s := server.Stats()
	require.Equal(t, 1, s.MinCap)
	require.Equal(t, 1024, s.MaxCap)
	require.Equal(t, 1024, s.Capacity)
	require.NoError(t, s.Err)

	_, err = server.Accept(within(t, 50*time.Millisecond))
	require.ErrorIs(t, err, quicpool.ErrTimeout)
	require.Zero(t, server.Stats().Waiters, "the caller gave up")

	client := startClient(t, 2, 2, server.Addr())
	sc, cc := tunnel(t, server, client, kib)
	sc.Close()
	cc.Close()
	client.Close()
	s = client.Stats()
	require.True(t, s.Closed)
	require.ErrorIs(t, s.Err, quicpool.ErrClosed)
	require.ErrorIs(t, client.Err(), quicpool.ErrClosed)
	require.Equal(t, uint64(1), s.HandedOut, "the counters survive Close")
	require.False(t, s.Running)
	require.False(t, client.Ready())
}

// errors.Is/As see through every layer of a call's error.
func TestErrorsUnwrap(t *testing.T) {
	var op *quicpool.OpError
	pool := quicpool.NewClientPool(1, 1, 0, 0, 0, "9", "", quicpool.StaticAddr("x:1"))
	defer pool.Close()
	_, err := pool.OutgoingGet("00000001", 0)
	require.ErrorAs(t, err, &op)
	require.Equal(t, "OutgoingGet", op.Op)
	require.False(t, op.Timeout(), "a configuration error is no timeout")
	require.False(t, op.Temporary())
	require.True(t, errors.Is(err, quicpool.ErrInvalidConfig))

	server := startServer(t, 1)
	_, _, err = server.IncomingGet(0) // no client: nothing idle
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	require.True(t, ne.Timeout())
	require.True(t, ne.Temporary(), "a timeout is temporary, as net.Error's users expect")
	require.ErrorIs(t, err, quicpool.ErrTimeout)
}

// panickingHandler is a broken log handler: it panics on every record, and on every attribute
// or group it is given.
type panickingHandler struct{}

func (panickingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (panickingHandler) Handle(context.Context, slog.Record) error {
	panic("test: a broken log handler")
}
func (panickingHandler) WithAttrs([]slog.Attr) slog.Handler { panic("test: a broken WithAttrs") }
func (panickingHandler) WithGroup(string) slog.Handler      { panic("test: a broken WithGroup") }

// A log handler that panics costs its records, nothing else: the pools connect, serve, heal and
// close as with any other logger. The pool logs inside its actors, and while it recovers a panic:
// a panic escaping there would restart the actor with an empty state, or end the process.
func TestPanickingLogHandlerCostsOnlyItsRecords(t *testing.T) {
	baseline := runtime.NumGoroutine()
	broken := quicpool.WithLogger(slog.New(panickingHandler{}))
	server := startServer(t, 4, broken, quicpool.WithName("server")) // WithName adds an attribute
	client := startClient(t, 2, 4, server.Addr(), broken, quicpool.WithName("client"))
	tunnel(t, server, client, []byte("before the reconnect"))
	forceReconnect(t, server, client)
	tunnel(t, server, client, []byte("after the reconnect"))
	client.Close()
	server.Close()
	require.ErrorIs(t, client.Err(), quicpool.ErrClosed)
	settleGoroutines(t, baseline)
}
