package quicpool_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool"
	"github.com/quicpool/quicpool/messages"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A client dialing from 127.0.0.2 to a server that allows only 127.0.0.1 gets nothing, and the
// server holds nothing from it, while the allowed client keeps working.
func TestClientIPRestriction(t *testing.T) {
	server := quicpool.NewServerPool(256, "127.0.0.1", selfSigned(t), "127.0.0.1:0", time.Second)
	go server.ServerManager()
	defer server.Close()
	addr := listenAddr(server)
	allowed := startClient(t, 4, 4, addr, quicpool.WithLocalAddr("127.0.0.1:0"))
	other := quicpool.NewClientPool(4, 4, 0, 0, time.Second, "1", "localhost", quicpool.StaticAddr(addr),
		quicpool.WithLocalAddr("127.0.0.2:0"), quicpool.WithRestartPolicy(fastRetry))
	go other.ClientManager()
	defer other.Close()

	s := waitFor(t, server, "refusals", func(s messages.Stats) bool { return s.Refused >= 3 })
	require.Equal(t, 1, s.ShardsUp, "only the allowed client holds a shard")
	require.Zero(t, other.Stats().Idle)
	require.ErrorContains(t, other.Stats().Err, "CONNECTION_REFUSED")
	for range 4 {
		sc, cc := tunnel(t, server, allowed, kib)
		require.Equal(t, "127.0.0.1", sc.RemoteAddr().(*net.UDPAddr).IP.String())
		sc.Close()
		cc.Close()
	}
}

// WithAllowedClients takes IPs and CIDR prefixes.
func TestAllowedClientsCIDR(t *testing.T) {
	server := quicpool.NewServerPool(4, "", selfSigned(t), "127.0.0.1:0", time.Second,
		quicpool.WithAllowedClients("10.0.0.0/8", "127.0.0.2/32"))
	go server.ServerManager()
	defer server.Close()
	addr := listenAddr(server)
	ok := startClient(t, 2, 2, addr, quicpool.WithLocalAddr("127.0.0.2:0"))
	sc, cc := tunnel(t, server, ok, kib)
	sc.Close()
	cc.Close()
	no := quicpool.NewClientPool(1, 1, 0, 0, time.Second, "1", "localhost", quicpool.StaticAddr(addr),
		quicpool.WithLocalAddr("127.0.0.1:0"))
	go no.ClientManager()
	defer no.Close()
	waitFor(t, server, "a refusal", func(s messages.Stats) bool { return s.Refused >= 1 })
}

// rawClient dials the server with plain quic-go, speaking ALPN np-quic but not the pool protocol.
func rawClient(t *testing.T, addr string) *quic.Conn {
	t.Helper()
	conn, err := quic.DialAddr(waitCtx(t), addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{quicpool.ALPN}},
		&quic.Config{MaxIdleTimeout: 10 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { conn.CloseWithError(0, "") })
	return conn
}

// A stream that fails its handshake is refused, counted and logged with why (at Debug level,
// so that a peer sending garbage cannot fill the log): the log names ErrBadHandshake's text and
// the byte that came.
func TestBadHandshakeIsLogged(t *testing.T) {
	var log syncBuffer
	server := quicpool.NewServerPool(8, "", selfSigned(t), "127.0.0.1:0", time.Second,
		quicpool.WithLogger(slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	go server.ServerManager()
	defer server.Close()
	conn := rawClient(t, listenAddr(server))
	s, err := conn.OpenStreamSync(waitCtx(t))
	require.NoError(t, err)
	_, err = s.Write([]byte{0xff})
	require.NoError(t, err)
	waitFor(t, server, "the bad handshake to be counted", func(s messages.Stats) bool { return s.Failed >= 1 })
	line := regexp.MustCompile(`(?m)^.*msg="stream refused".*$`).FindString(log.String())
	require.Contains(t, line, `err="quicpool: bad stream handshake: handshake byte 0xff, want 0x00"`, log.String())
}

// Hostile clients (one opens streams and stays silent, one sends garbage, one handshakes
// thousands of streams and never uses them) cannot starve the legitimate client, and the server
// never holds more than maxCap idle streams.
func TestHostileClients(t *testing.T) {
	const maxCap = 512 // 4 shard slots: the legitimate client and three attackers
	server := quicpool.NewServerPool(maxCap, "", selfSigned(t), "127.0.0.1:0", time.Second,
		quicpool.WithHandshakeTimeout(300*time.Millisecond))
	go server.ServerManager()
	defer server.Close()
	addr := listenAddr(server)
	legit := startClient(t, 16, 16, addr)

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	attack := func(streams int, first []byte) {
		conn := rawClient(t, addr)
		wg.Go(func() {
			for range streams {
				s, err := conn.OpenStreamSync(ctx)
				if err != nil {
					return
				}
				if first != nil {
					s.Write(first)
				}
			}
		})
	}
	attack(2000, nil)                      // silent: never sends the handshake byte
	attack(2000, []byte{0xff, 0xee, 0xdd}) // garbage instead of the handshake byte
	attack(5000, []byte{0x00})             // valid handshakes, streams never used

	// Throughout the attack the legitimate client keeps its pool full and its streams work,
	// taken on its side and found by ID on the server.
	for i := range 50 {
		require.NoError(t, legit.WaitReady(waitCtx(t), 1), "round %d", i)
		id, cc, err := legit.IncomingGet(5 * time.Second)
		require.NoError(t, err)
		sc, err := server.OutgoingGet(id, 5*time.Second)
		require.NoError(t, err, "round %d", i)
		roundTrip(t, cc, sc, kib)
		cc.Close()
		sc.Close()
		s := server.Stats()
		require.LessOrEqual(t, s.Idle, maxCap)
	}
	// An attacker's connection is up on the server once the server has its last handshake packet,
	// which a loaded host may drop and the attacker resend later: wait for all four before judging
	// the shares, which follow the number of connections up.
	waitFor(t, server, "the four connections up", func(s messages.Stats) bool { return s.ShardsUp == 4 })
	s := waitFor(t, server, "the bad handshakes to be counted", func(s messages.Stats) bool { return s.Failed >= 100 })
	assert.LessOrEqual(t, s.Idle, maxCap)
	assert.Equal(t, 4, s.ShardsUp, "no connection was dropped: %+v", s)
	s = waitFor(t, server, "the flood to fill its share", func(s messages.Stats) bool { return s.Idle >= 100 })
	assert.LessOrEqual(t, s.Idle, maxCap/4+2*16, "the flooding connection holds no more than its share")
	stop()
	wg.Wait()
}

// TLS code "2" verifies the server: against a self-signed server it fails, permanently, with the
// certificate error inside ErrUnavailable; "0" and "1" connect.
func TestTLSModes(t *testing.T) {
	server := startServer(t, 8)
	for _, code := range []string{"0", "1"} {
		client := quicpool.NewClientPool(1, 1, 0, 0, time.Second, code, "", quicpool.StaticAddr(server.Addr()))
		go client.ClientManager()
		require.NoError(t, client.WaitReady(waitCtx(t), 1), "TLS code %q", code)
		client.Close()
	}
	policy := quicpool.RestartPolicy{InitialBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, MaxRestarts: 1}
	verified := quicpool.NewClientPool(1, 1, 0, 0, time.Second, "2", "localhost", quicpool.StaticAddr(server.Addr()),
		quicpool.WithRestartPolicy(policy))
	go verified.ClientManager()
	defer verified.Close()
	err := verified.WaitReady(waitCtx(t), 1)
	require.ErrorIs(t, err, quicpool.ErrUnavailable)
	var verify *tls.CertificateVerificationError
	require.ErrorAs(t, err, &verify, "the cause is the certificate: %v", err)
	_, err = verified.OutgoingGet(quicpool.ControlID, time.Minute)
	require.ErrorAs(t, err, &verify)
}

// Invalid arguments and failing resolvers are clear errors, never panics or silent loops.
func TestArgumentErrors(t *testing.T) {
	t.Run("bad allowed client", func(t *testing.T) {
		p := quicpool.NewServerPool(1, "", selfSigned(t), "127.0.0.1:0", 0, quicpool.WithAllowedClients("10.0.0.0/33"))
		defer p.Close()
		require.ErrorIs(t, p.Err(), quicpool.ErrInvalidConfig)
	})
	t.Run("bad local address", func(t *testing.T) {
		p := quicpool.NewClientPool(1, 1, 0, 0, 0, "0", "", quicpool.StaticAddr("127.0.0.1:1"), quicpool.WithLocalAddr("nowhere"))
		defer p.Close()
		require.ErrorIs(t, p.Err(), quicpool.ErrInvalidConfig)
	})
	policy := quicpool.RestartPolicy{InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, MaxRestarts: 2}
	for name, resolver := range map[string]func() (string, error){
		"resolver error":       func() (string, error) { return "", errors.New("lookup failed") },
		"unparsable address":   quicpool.StaticAddr("not an address"),
		"address without port": quicpool.StaticAddr("127.0.0.1"),
	} {
		t.Run(name, func(t *testing.T) {
			p := quicpool.NewClientPool(1, 1, 0, 0, time.Second, "0", "", resolver, quicpool.WithRestartPolicy(policy))
			go p.ClientManager()
			defer p.Close()
			err := p.WaitReady(waitCtx(t), 1)
			require.ErrorIs(t, err, quicpool.ErrUnavailable, "the pool says it cannot connect")
			require.NotNil(t, p.Stats().Err)
			require.ErrorIs(t, p.Err(), quicpool.ErrUnavailable)
		})
	}
	t.Run("normalisation", func(t *testing.T) {
		p := quicpool.NewClientPool(10, 2, 3*time.Second, -1, 0, "0", "", quicpool.StaticAddr("127.0.0.1:1"))
		defer p.Close()
		s := p.Stats()
		require.Equal(t, 2, s.MinCap, "min > max swaps")
		require.Equal(t, 10, s.MaxCap)
		require.Equal(t, time.Second, s.Interval, "<= 0 takes 1s, then min > max swaps")
	})
}

// A server that answers some handshakes with a short ID, or never, among good ones, costs the
// client only those streams: each is reset and counted, and the connection is kept.
func TestClientDiscardsBadIDs(t *testing.T) {
	tlsConf := selfSigned(t)
	tlsConf.NextProtos = []string{quicpool.ALPN}
	ln, err := quic.ListenAddr("127.0.0.1:0", tlsConf, &quic.Config{MaxIdleTimeout: 10 * time.Second})
	require.NoError(t, err)
	defer ln.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		conn, err := ln.Accept(context.Background())
		if err != nil {
			return
		}
		defer conn.CloseWithError(0, "")
		for i := 0; ; i++ {
			s, err := conn.AcceptStream(context.Background())
			if err != nil {
				return
			}
			switch i % 3 {
			case 0:
				s.Write([]byte{0xab, 0xcd}) // two bytes of a four-byte ID, then FIN
				s.Close()
			case 1: // never answered
			case 2:
				s.Write([]byte{0x10, 0x20, 0x30, byte(i)}) // a good ID: handshakes do complete
			}
		}
	})

	client := quicpool.NewClientPool(8, 8, 50*time.Millisecond, 50*time.Millisecond, time.Second, "0", "",
		quicpool.StaticAddr(ln.Addr().String()), quicpool.WithHandshakeTimeout(200*time.Millisecond))
	go client.ClientManager()
	defer ln.Close()
	defer client.Close() // before wg.Wait: closing the connection ends the server's goroutine
	s := waitFor(t, client, "bad IDs to be counted", func(s messages.Stats) bool { return s.Failed >= 8 })
	require.LessOrEqual(t, s.Idle, int(s.Opened), "only streams with a good ID are kept")
	require.Equal(t, 1, s.ShardsUp, "the connection is kept")
	require.Zero(t, s.Restarts)
	require.Zero(t, s.Violations, "bad answers among good ones are no violation")
	require.NoError(t, s.Err, "a connection is up: nothing keeps the pool from serving")
}

// A connection that moves to another address (a NAT rebinding, a migration) is checked against
// the allow-list again: the server refuses it, counted and broadcast, within a probe interval of
// quic-go switching to the new path.
func TestAllowListRecheckedAfterMigration(t *testing.T) {
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	require.NoError(t, err)
	events := subscribe(t, engine)
	server := quicpool.NewServerPool(8, "127.0.0.1", selfSigned(t), "127.0.0.1:0", 10*time.Second, quicpool.WithEngine(engine))
	go server.ServerManager()
	defer server.Close()
	relay := newRelay(t, listenAddr(server))
	client := startClient(t, 2, 2, relay.Addr())
	sc, cc := tunnel(t, server, client, kib)
	defer sc.Close()
	defer cc.Close()

	relay.RebindFrom(net.IPv4(127, 0, 0, 2))
	moved := time.Now()
	ev := waitEvent(t, events, messages.EventRefused)
	t.Logf("refused %v after the move", time.Since(moved).Round(time.Millisecond))
	require.ErrorIs(t, ev.Err, quicpool.ErrUnauthorized)
	require.Contains(t, ev.Addr, "127.0.0.2")
	// The client redials from the relay's new address at once, and those dials are refused too,
	// as not allowed: only the migration counts as moved.
	after := waitFor(t, server, "the moved connection to be closed", func(s messages.Stats) bool {
		return s.ShardsUp == 0 && s.Refusals.Moved >= 1
	})
	require.Equal(t, uint64(1), after.Refusals.Moved, "counted as moved once: %+v", after.Refusals)
	require.Equal(t, after.Refused, after.Refusals.Moved+after.Refusals.NotAllowed, "the redials are refused as not allowed: %+v", after.Refusals)
}

// newCA returns a certificate authority for client certificates.
func newCA(t *testing.T, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return ca, key
}

// clientCert returns a client certificate signed by ca.
func clientCert(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// Mutual TLS: a client with a certificate of the server's CA (or a pinned one) is served; one
// without a certificate, or with another CA's, is refused during the handshake, counted and
// broadcast, and sees why.
func TestMutualTLS(t *testing.T) {
	ca, caKey := newCA(t, "tunnel CA")
	other, otherKey := newCA(t, "another CA")
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	good := clientCert(t, ca, caKey, "good client")
	pinned := clientCert(t, other, otherKey, "pinned client")
	pin := sha256.Sum256(pinned.Certificate[0])

	engine, err := actor.NewEngine(actor.NewEngineConfig())
	require.NoError(t, err)
	events := subscribe(t, engine)
	server, err := quicpool.NewServer("127.0.0.1:0", selfSigned(t), quicpool.WithCapacity(1, 256),
		quicpool.WithClientCAs(pool), quicpool.WithClientFingerprints(hex.EncodeToString(pin[:])), quicpool.WithEngine(engine))
	require.NoError(t, err)
	defer server.Close()
	insecure := quicpool.WithTLSConfig(&tls.Config{InsecureSkipVerify: true})

	for _, cert := range []tls.Certificate{good, pinned} {
		client, err := quicpool.NewClient(server.Addr(), insecure, quicpool.WithCapacity(2, 2), quicpool.WithClientCertificate(cert))
		require.NoError(t, err)
		require.NoError(t, client.WaitReady(waitCtx(t), 2))
		sc, cc := tunnel(t, server, client, kib)
		sc.Close()
		cc.Close()
		client.Close()
	}

	for i, opts := range [][]quicpool.Option{
		{insecure},
		{insecure, quicpool.WithClientCertificate(clientCert(t, other, otherKey, "stranger"))},
	} {
		client, err := quicpool.NewClient(server.Addr(), append(opts, quicpool.WithCapacity(2, 2))...)
		require.NoError(t, err)
		err = client.WaitReady(waitCtx(t), 1)
		require.ErrorIs(t, err, quicpool.ErrUnavailable, "refused during the handshake, at once")
		ev := waitEvent(t, events, messages.EventRefused)
		require.ErrorIs(t, ev.Err, quicpool.ErrUnauthorized)
		waitFor(t, server, "the refusal to be counted", func(s messages.Stats) bool { return s.Refused >= uint64(i+1) })
		client.Close()
	}
}

// With WithClientCAs the server's own TLS check still runs: a client whose certificate chains to
// the CA but which the application's VerifyConnection rejects (revoked, say) is refused, counted,
// and sees why; the others are served. The pool's check replaces the config's ClientAuth.
func TestMutualTLSKeepsTheApplicationsCheck(t *testing.T) {
	ca, caKey := newCA(t, "tunnel CA")
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	conf := selfSigned(t)
	conf.ClientAuth = tls.RequireAndVerifyClientCert // against ClientCAs, which is nil: WithClientCAs decides instead
	conf.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) > 0 && cs.PeerCertificates[0].Subject.CommonName == "revoked client" {
			return errors.New("certificate revoked")
		}
		return nil
	}
	server, err := quicpool.NewServer("127.0.0.1:0", conf, quicpool.WithCapacity(1, 256), quicpool.WithClientCAs(pool))
	require.NoError(t, err)
	defer server.Close()
	insecure := quicpool.WithTLSConfig(&tls.Config{InsecureSkipVerify: true})

	good, err := quicpool.NewClient(server.Addr(), insecure, quicpool.WithCapacity(2, 2),
		quicpool.WithClientCertificate(clientCert(t, ca, caKey, "good client")))
	require.NoError(t, err)
	defer good.Close()
	require.NoError(t, good.WaitReady(waitCtx(t), 2))

	revoked, err := quicpool.NewClient(server.Addr(), insecure, quicpool.WithCapacity(2, 2),
		quicpool.WithClientCertificate(clientCert(t, ca, caKey, "revoked client")))
	require.NoError(t, err)
	defer revoked.Close()
	require.ErrorIs(t, revoked.WaitReady(waitCtx(t), 1), quicpool.ErrUnavailable, "refused during the handshake")
	waitFor(t, server, "the refusal to be counted", func(s messages.Stats) bool { return s.Refused == 1 })
}

// One Initial packet from a spoofed address (the first datagram of a handshake, whose answers
// never reach anyone) does not shrink the stream credit of a client that connects meanwhile:
// every client verifies its address with a Retry before it gets credit, which a spoofed address
// cannot answer.
func TestSpoofedInitialTakesNoCredit(t *testing.T) {
	const maxCap = 1024
	server, err := quicpool.NewServer("127.0.0.1:0", selfSigned(t), quicpool.WithCapacity(1, maxCap))
	require.NoError(t, err)
	defer server.Close()
	lonelyInitial(t, server.Addr(), net.IPv4(127, 0, 0, 3))
	require.Equal(t, 2*maxCap, streamCredit(t, server.Addr()), "a lone client's credit: 2 x maxCap")
}

// lonelyInitial sends the server at addr, from ip, the first datagram of a real client's
// handshake and nothing more, and returns once the server has had time to take it: a connection
// that stays in its handshake there until its handshake timeout, as one from a spoofed address.
func lonelyInitial(t *testing.T, addr string, ip net.IP) {
	t.Helper()
	relay, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip}) // what the client dials
	require.NoError(t, err)
	defer relay.Close()
	require.NoError(t, relay.SetReadDeadline(time.Now().Add(5*time.Second)))
	out, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip}) // what the server sees; nothing it says is read
	require.NoError(t, err)
	defer out.Close()
	server, sent := mustResolve(t, addr), make(chan error, 1)
	go func() {
		buf := make([]byte, 2048)
		n, _, err := relay.ReadFromUDP(buf)
		if err == nil {
			_, err = out.WriteToUDP(buf[:n], server)
		}
		sent <- err
	}()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, _ = quic.DialAddr(ctx, relay.LocalAddr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{quicpool.ALPN}}, nil)
	}()
	require.NoError(t, <-sent)
	cancel()
	// The server takes the datagram in its own time: wait until it has answered it (a Retry, or
	// without address validation its Initial), which arrives on out.
	require.NoError(t, out.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, _, err = out.ReadFromUDP(make([]byte, 2048))
	require.NoError(t, err, "the server answered the lone Initial")
}

// streamCredit dials addr from 127.0.0.1 with a raw quic-go client and counts the streams the
// server lets it open at once.
func streamCredit(t *testing.T, addr string) int {
	t.Helper()
	conn, err := quic.DialAddr(waitCtx(t), addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{quicpool.ALPN}},
		&quic.Config{MaxIdleTimeout: 30 * time.Second})
	require.NoError(t, err)
	defer conn.CloseWithError(0, "")
	n := 0
	for ; n < 100_000; n++ { // bounded: the credit ends it long before
		if _, err := conn.OpenStream(); err != nil {
			break
		}
	}
	return n
}

// A quicpool client verifies its address with a Retry on its first dial only: it keeps the token
// the server hands out, and its next dial to the same server skips the Retry.
func TestClientKeepsTheServersToken(t *testing.T) {
	server := startServer(t, 2)
	path := newRelay(t, server.Addr())
	client := startClient(t, 2, 2, path.Addr())
	first := path.retries.Load() // one per Initial of the first dial: a ClientHello may take two
	require.Positive(t, first, "the first dial verifies its address")
	forceReconnect(t, server, client)
	require.Equal(t, first, path.retries.Load(), "the redial shows the server's token instead")
}

// A refused dial counts once, however many of its Initial packets quic-go's listener asked to
// admit (a ClientHello with a post-quantum key share spans two, and a retransmitted one asks
// again).
func TestARefusedDialCountsOnce(t *testing.T) {
	server := startServer(t, 8, quicpool.WithAllowedClients("127.0.0.1"))
	const dials = 3
	for range dials {
		dialRefused(t, server.Addr())
	}
	// An allowed client's connection is admitted after every Initial of the refused dials was
	// judged (one listener handles them in order): once the server holds its streams, all the
	// refusals have been counted.
	startClient(t, 2, 2, server.Addr())
	require.NoError(t, server.WaitReady(waitCtx(t), 2))
	s := server.Stats()
	require.Equal(t, uint64(dials), s.Refused, "%+v", s.Refusals)
	require.Equal(t, uint64(dials), s.Refusals.NotAllowed)
}

// dialRefused dials addr once from 127.0.0.2, from a port of its own, and requires the dial to
// fail: the tests' servers allow only 127.0.0.1.
func dialRefused(t *testing.T, addr string) {
	t.Helper()
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	require.NoError(t, err)
	defer udp.Close()
	tr := &quic.Transport{Conn: udp}
	defer tr.Close()
	_, err = tr.Dial(waitCtx(t), mustResolve(t, addr),
		&tls.Config{InsecureSkipVerify: true, NextProtos: []string{quicpool.ALPN}}, nil)
	require.Error(t, err, "refused")
}

// A flood of refused connections is logged thinly, the 1st, 2nd, 4th, 8th... with the count so
// far, while every one is counted.
func TestRefusalsAreLoggedThinly(t *testing.T) {
	var log syncBuffer
	server := startServer(t, 8, quicpool.WithAllowedClients("127.0.0.1"),
		quicpool.WithLogger(slog.New(slog.NewTextHandler(&log, nil))))
	const refusals = 9
	for range refusals {
		dialRefused(t, server.Addr())
	}
	n := waitFor(t, server, "the refusals to be counted", func(s messages.Stats) bool { return s.Refusals.NotAllowed >= refusals }).Refusals.NotAllowed
	var logged []uint64
	for _, m := range regexp.MustCompile(`msg="connection refused" .*"refused so far"=(\d+)`).FindAllStringSubmatch(log.String(), -1) {
		k, err := strconv.ParseUint(m[1], 10, 64)
		require.NoError(t, err)
		logged = append(logged, k)
	}
	require.Equal(t, []uint64{1, 2, 4, 8}, logged[:min(4, len(logged))], "the 1st, 2nd, 4th and 8th:\n%s", log.String())
	for _, k := range logged {
		require.Zero(t, k&(k-1), "only powers of two are logged: %v", logged)
	}
	require.Less(t, uint64(len(logged)), n, "%d logged of %d refused", len(logged), n)
}
