package quicpool_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/quicpool/quicpool"
	"github.com/quicpool/quicpool/messages"
	"github.com/stretchr/testify/require"
)

// selfSigned returns a server TLS config with a fresh self-signed certificate for localhost and
// 127.0.0.1.
func selfSigned(t testing.TB) *tls.Config {
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
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// waitCtx is the bound of every wait for an event in these tests.
func waitCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// startServer starts a server pool on a free loopback port and waits until it listens.
func startServer(t testing.TB, maxCap int, opts ...quicpool.Option) *quicpool.Pool {
	t.Helper()
	p := quicpool.NewServerPool(maxCap, "", selfSigned(t), "127.0.0.1:0", 10*time.Second, opts...)
	go p.ServerManager()
	t.Cleanup(p.Close)
	require.NoError(t, p.WaitReady(waitCtx(t), 0))
	require.NotEmpty(t, p.Addr())
	return p
}

// startClient starts a client pool against addr and waits until it holds minCap idle streams.
func startClient(t testing.TB, minCap, maxCap int, addr string, opts ...quicpool.Option) *quicpool.Pool {
	t.Helper()
	p := quicpool.NewClientPool(minCap, maxCap, 100*time.Millisecond, time.Second, 10*time.Second,
		"1", "localhost", quicpool.StaticAddr(addr), opts...)
	go p.ClientManager()
	t.Cleanup(p.Close)
	require.NoError(t, p.WaitReady(waitCtx(t), minCap))
	return p
}

// forceReconnect closes the server side of the connection of one of the server's idle streams
// (the client's only connection) and waits until the client has redialed into the same slot.
// CloseWithError returns once the connection has stopped.
func forceReconnect(t testing.TB, server, client *quicpool.Pool) {
	t.Helper()
	before := client.Stats().Reconnects
	reply := make(chan messages.Stream, 1)
	server.Engine().Send(server.Coordinator(), messages.Get{Deadline: time.Now().Add(5 * time.Second), Reply: reply})
	got := <-reply
	require.NoError(t, got.Err)
	require.NoError(t, got.Conn.CloseWithError(0, "test: forced reconnect"))
	_ = got.Stream.Close()
	waitFor(t, client, "a reconnect", func(s messages.Stats) bool { return s.Reconnects > before && s.ShardsUp == 1 })
}

// tunnel takes a stream on the server (any) and the same stream on the client (by ID), moves
// payload both ways, and closes both ends without draining what is left.
func tunnel(t testing.TB, server, client *quicpool.Pool, payload []byte) (serverConn, clientConn net.Conn) {
	t.Helper()
	id, sc, err := server.IncomingGet(5 * time.Second)
	require.NoError(t, err)
	cc, err := client.OutgoingGet(id, 5*time.Second)
	require.NoError(t, err)
	roundTrip(t, sc, cc, payload)
	return sc, cc
}

// roundTrip writes payload from a to b and back from b to a, checking both arrive intact.
func roundTrip(t testing.TB, a, b net.Conn, payload []byte) {
	t.Helper()
	for _, dir := range [][2]net.Conn{{a, b}, {b, a}} {
		errc := make(chan error, 1)
		go func() { _, err := dir[0].Write(payload); errc <- err }()
		got := make([]byte, len(payload))
		_, err := io.ReadFull(dir[1], got)
		require.NoError(t, err)
		require.NoError(t, <-errc)
		require.Equal(t, payload, got)
	}
}

// settleGoroutines waits until the number of goroutines is back to at most baseline, and fails
// with a dump of the survivors if it does not come back.
func settleGoroutines(t testing.TB, baseline int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("%d goroutines, baseline %d:\n%s", runtime.NumGoroutine(), baseline, buf[:n])
		}
		runtime.Gosched()
		time.Sleep(5 * time.Millisecond) // yield to the exiting goroutines; the loop waits on the count
	}
}

// listenAddr waits for a server pool to listen and returns its address.
func listenAddr(p *quicpool.Pool) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitReady(ctx, 0); err != nil {
		panic(err)
	}
	return p.Addr()
}

func port(t testing.TB, addr net.Addr) int {
	t.Helper()
	udp, ok := addr.(*net.UDPAddr)
	require.True(t, ok, "%T is not a UDP address", addr)
	return udp.Port
}

// snapshot asks a pool's coordinator for its state through the message protocol.
func snapshot(p *quicpool.Pool) messages.Stats {
	reply := make(chan messages.Stats, 1)
	p.Engine().Send(p.Coordinator(), messages.State{Reply: reply})
	return <-reply
}

// waitFor polls a pool's state until cond holds, failing after the test's wait bound.
func waitFor(t testing.TB, p *quicpool.Pool, what string, cond func(messages.Stats) bool) messages.Stats {
	t.Helper()
	ctx := waitCtx(t)
	for {
		s := snapshot(p)
		if cond(s) {
			return s
		}
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s; state: %+v", what, s)
		case <-time.After(2 * time.Millisecond):
		}
	}
}
