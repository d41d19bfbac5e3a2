// Package interop checks that quicpool and NodePass's github.com/NodePassProject/quic v1.1.1 speak
// the same protocol: each library's client pool against the other's server
// pool, over real loopback QUIC.
//
// Working with NodePass under the race detector. NodePass's Pool writes its ctx and cancel fields
// in ClientManager/ServerManager and reads them, unsynchronised, in every other method, and its
// Close (through Flush) overwrites its streams map and ID channel while its own goroutines may
// still use them. Closing a NodePass client pool while its manager runs
// was reported as a data race (quic.go:475/482 against quic.go:218/323/336) on every try. These
// tests therefore give NodePass's goroutines a happens-before edge to the test goroutine before
// they touch a NodePass pool (the server-side measures are defensive: no race was seen there):
//   - a NodePass server is handed its certificate through a GetCertificate hook: the first TLS
//     handshake runs in a goroutine that ServerManager started after writing ctx, and closes a
//     channel the test waits on;
//   - a NodePass client resolves its address through a hook that ClientManager calls after
//     writing ctx; at the end the hook parks the manager (it is called again once the peer is
//     gone and the pool redials), so that Close runs while the manager is provably idle;
//   - a NodePass server is closed only once our client holds every stream NodePass admits
//     (NodePass's stream limit is its maxCap), so no NodePass stream handshake is in flight.
//
// NodePass has no event API, so its state (Active) is polled in a bounded loop; our pools are
// waited on with WaitReady.
package interop

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	npquic "github.com/NodePassProject/quic"
	"github.com/quicpool/quicpool"
	"github.com/stretchr/testify/require"
)

const (
	waitLimit  = 20 * time.Second       // bound of every wait for an event
	pollEvery  = 10 * time.Millisecond  // how often NodePass's state is polled (it has no events)
	getTimeout = 5 * time.Second        // timeout of every OutgoingGet/IncomingGet
	keepAlive  = 10 * time.Second       // both sides: keep-alive; idle timeout is 3x
	minIvl     = 100 * time.Millisecond // client refill intervals (NodePass production values)
	maxIvl     = time.Second
	payloadLen = 1024
)

// ---------------------------------------------------------------------------------------------
// Certificates

// testCert is a fresh self-signed certificate for localhost and 127.0.0.1.
type testCert struct {
	der  []byte
	cert tls.Certificate
}

func newTestCert(t testing.TB) *testCert {
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
	return &testCert{der: der, cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}}
}

// config is a server TLS config carrying the certificate.
func (c *testCert) config() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{c.cert}}
}

// hookedConfig is a server TLS config that hands out the certificate through GetCertificate and
// calls onHello, in the handshake's goroutine, on every handshake.
func (c *testCert) hookedConfig(onHello func()) *tls.Config {
	return &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		onHello()
		return &c.cert, nil
	}}
}

// checkTLS checks what TLS code "1" relies on: the stream's connection runs TLS 1.3 with ALPN
// np-quic, and the peer presented exactly our self-signed certificate (NodePass compares its
// fingerprint through ConnectionState).
func checkTLS(t testing.TB, conn net.Conn, cert *testCert) {
	t.Helper()
	cs, ok := conn.(interface{ ConnectionState() tls.ConnectionState })
	require.Truef(t, ok, "%T has no ConnectionState", conn)
	state := cs.ConnectionState()
	require.Equal(t, uint16(tls.VersionTLS13), state.Version)
	require.Equal(t, quicpool.ALPN, state.NegotiatedProtocol)
	if cert != nil {
		require.NotEmpty(t, state.PeerCertificates)
		require.Equal(t, cert.der, state.PeerCertificates[0].Raw, "peer certificate fingerprint")
	}
}

// ---------------------------------------------------------------------------------------------
// Waiting

func waitCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

// await waits for ch to be closed, at most waitLimit.
func await(t testing.TB, ch <-chan struct{}, what string) bool {
	t.Helper()
	timer := time.NewTimer(waitLimit)
	defer timer.Stop()
	select {
	case <-ch:
		return true
	case <-timer.C:
		t.Errorf("timed out after %v waiting for %s", waitLimit, what)
		return false
	}
}

// pollUntil polls cond every pollEvery until it holds, at most waitLimit. Only for NodePass
// pools, which have no event to wait on.
func pollUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	ticker := time.NewTicker(pollEvery)
	defer ticker.Stop()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			require.FailNowf(t, "timed out", "after %v waiting for %s", waitLimit, what)
		}
		<-ticker.C
	}
}

// freeUDPAddr returns a loopback UDP address that was free a moment ago: NodePass's server cannot
// listen on port 0 and report the port it got.
func freeUDPAddr(t testing.TB) string {
	t.Helper()
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	addr := udp.LocalAddr().String()
	require.NoError(t, udp.Close())
	return addr
}

// ---------------------------------------------------------------------------------------------
// Our pools

func startOurServer(t testing.TB, maxCap int, cert *testCert) *quicpool.Pool {
	t.Helper()
	p := quicpool.NewServerPool(maxCap, "", cert.config(), "127.0.0.1:0", keepAlive)
	go p.ServerManager()
	t.Cleanup(p.Close)
	require.NoError(t, p.WaitReady(waitCtx(t), 0))
	require.NotEmpty(t, p.Addr())
	return p
}

func startOurClient(t testing.TB, minCap, maxCap int, addr string) *quicpool.Pool {
	t.Helper()
	p := quicpool.NewClientPool(minCap, maxCap, minIvl, maxIvl, keepAlive, "1", "localhost",
		quicpool.StaticAddr(addr))
	go p.ClientManager()
	t.Cleanup(p.Close)
	return p
}

// ---------------------------------------------------------------------------------------------
// NodePass pools

// theirServer is a NodePass server pool.
type theirServer struct {
	*npquic.Pool
	addr  string
	hello chan struct{} // closed by the first TLS handshake: ServerManager has set the pool up
	done  chan struct{} // closed when ServerManager returns
}

func startTheirServer(t testing.TB, maxCap int, cert *testCert) *theirServer {
	t.Helper()
	s := &theirServer{addr: freeUDPAddr(t), hello: make(chan struct{}), done: make(chan struct{})}
	s.Pool = npquic.NewServerPool(maxCap, "", cert.hookedConfig(sync.OnceFunc(func() { close(s.hello) })),
		s.addr, keepAlive)
	require.NotNil(t, s.Pool)
	go func() {
		defer close(s.done)
		s.ServerManager()
	}()
	return s
}

// shutdown closes the pool and waits for ServerManager to return. Call it once no client is
// connected any more and no stream handshake is in flight (NodePass's Close races with them).
func (s *theirServer) shutdown(t testing.TB) {
	s.Close()
	await(t, s.done, "NodePass ServerManager to return")
}

// theirClient is a NodePass client pool whose address resolver is the test's hook into its
// manager goroutine.
type theirClient struct {
	*npquic.Pool
	resolved chan struct{} // closed by the first resolution: ClientManager has set the pool up
	closing  chan struct{} // closed by shutdown: the resolver parks the manager
	parked   chan struct{} // closed when the manager is parked in the resolver
	release  chan struct{} // closed after Close: the parked resolver returns an error
	done     chan struct{} // closed when ClientManager returns
}

var errResolverClosed = errors.New("interop: pool is closing")

func startTheirClient(t testing.TB, minCap, maxCap int, addr string) *theirClient {
	t.Helper()
	c := &theirClient{
		resolved: make(chan struct{}),
		closing:  make(chan struct{}),
		parked:   make(chan struct{}),
		release:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	resolved := sync.OnceFunc(func() { close(c.resolved) })
	parked := sync.OnceFunc(func() { close(c.parked) })
	resolve := func() (string, error) {
		resolved()
		select {
		case <-c.closing:
			parked()
			<-c.release
			return "", errResolverClosed
		default:
			return addr, nil
		}
	}
	c.Pool = npquic.NewClientPool(minCap, maxCap, minIvl, maxIvl, keepAlive, "1", "localhost", resolve)
	go func() {
		defer close(c.done)
		c.ClientManager()
	}()
	require.True(t, await(t, c.resolved, "NodePass ClientManager to resolve the server address"))
	return c
}

// shutdown closes the pool once its server is gone. NodePass's ClientManager reads the pool's
// streams and ID channel on every tick, and Close replaces both, so Close must run while the
// manager is parked in the resolver: it calls it when the pool lacks streams and the connection
// is dead. The idle streams of the dead connection are taken until it does.
func (c *theirClient) shutdown(t testing.TB) {
	close(c.closing)
	ticker := time.NewTicker(pollEvery)
	defer ticker.Stop()
	giveUp := time.Now().Add(waitLimit)
	for parked := false; !parked; {
		if c.Active() > 0 {
			if _, conn, err := c.IncomingGet(pollEvery); err == nil {
				_ = conn.Close()
			}
		}
		select {
		case <-c.parked:
			parked = true
		case <-ticker.C:
			if time.Now().After(giveUp) {
				t.Errorf("NodePass ClientManager did not redial within %v; closing it anyway", waitLimit)
				parked = true
			}
		}
	}
	c.Close()
	close(c.release)
	await(t, c.done, "NodePass ClientManager to return")
}

// ---------------------------------------------------------------------------------------------
// Pairings

// ourClientTheirServer starts a NodePass server pool with maxCap and our client pool against it,
// and waits until our client holds its first streams. Our client's minCap must be NodePass's
// maxCap: NodePass's stream limit (its quic.Config.MaxIncomingStreams) is its maxCap, so our
// client holding that many idle streams proves no NodePass stream handshake is in flight, which
// is what NodePass's Close needs (see quiesce).
func ourClientTheirServer(t testing.TB, maxCap int) (*quicpool.Pool, *theirServer, *testCert) {
	t.Helper()
	cert := newTestCert(t)
	their := startTheirServer(t, maxCap, cert)
	ours := startOurClient(t, maxCap, maxCap, their.addr)
	t.Cleanup(func() {
		ours.Close() // first: NodePass's Close must not race with its stream handshakes
		their.shutdown(t)
	})
	// maxCap-1: the control stream is one of the maxCap streams NodePass admits, and whether our
	// Active/WaitReady count it is not what this test is about.
	require.NoError(t, ours.WaitReady(waitCtx(t), maxCap-1))
	require.True(t, await(t, their.hello, "the NodePass server's TLS handshake"))
	require.True(t, ours.Ready())
	// NodePass files a stream's ID just after writing it: wait until it has filed ours.
	pollUntil(t, "the NodePass server to file our streams", func() bool { return their.Active() >= maxCap-1 })
	return ours, their, cert
}

// quiesce waits until our client holds every stream the NodePass server admits (its maxCap), so
// that no NodePass stream handshake is in flight when the pools close. Every stream taken must
// have been closed on both sides.
func quiesce(t testing.TB, ours *quicpool.Pool, maxCap int) {
	t.Helper()
	require.NoError(t, ours.WaitReady(waitCtx(t), maxCap), "our client did not get back to %d idle streams", maxCap)
}

// theirClientOurServer starts our server pool and a NodePass client pool against it, and waits
// until both hold their first streams.
func theirClientOurServer(t testing.TB, ourMaxCap, theirMinCap, theirMaxCap int) (*quicpool.Pool, *theirClient, *testCert) {
	t.Helper()
	cert := newTestCert(t)
	ours := startOurServer(t, ourMaxCap, cert)
	their := startTheirClient(t, theirMinCap, theirMaxCap, ours.Addr())
	t.Cleanup(func() {
		ours.Close() // first: the NodePass client is closed once its connection is dead
		their.shutdown(t)
	})
	require.NoError(t, ours.WaitReady(waitCtx(t), theirMinCap-1)) // -1: the control stream
	pollUntil(t, "the NodePass client to file its streams", func() bool { return their.Active() >= theirMinCap })
	return ours, their, cert
}

// ---------------------------------------------------------------------------------------------
// Streams

func randomPayload(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

// exchange sends a fresh random payload from a to b, then another from b to a, and checks that
// both arrive intact. Writes run in their own goroutine so that neither side's flow control can
// deadlock the test.
func exchange(t testing.TB, a, b net.Conn, n int) {
	t.Helper()
	for _, dir := range [][2]net.Conn{{a, b}, {b, a}} {
		payload := randomPayload(t, n)
		written := make(chan error, 1)
		go func() {
			_, err := dir[0].Write(payload)
			written <- err
		}()
		got := make([]byte, n)
		_, err := io.ReadFull(dir[1], got)
		require.NoError(t, err)
		require.NoError(t, <-written)
		require.True(t, bytes.Equal(payload, got), "payload corrupted")
	}
}

// deadline bounds every read and write on the stream, so that a peer that stops answering fails
// the test instead of hanging it.
func deadline(t testing.TB, conns ...net.Conn) {
	t.Helper()
	for _, c := range conns {
		require.NoError(t, c.SetDeadline(time.Now().Add(waitLimit)))
	}
}

// ourID checks that conn is one of our StreamConns and carries id.
func ourID(t testing.TB, conn net.Conn, id string) {
	t.Helper()
	sc, ok := conn.(*quicpool.StreamConn)
	require.Truef(t, ok, "our pool returned a %T, want *quicpool.StreamConn", conn)
	require.Equal(t, id, sc.ID())
}

// validID checks the wire format of a stream ID: 4 bytes, lowercase hex.
func validID(t testing.TB, id string) {
	t.Helper()
	require.Regexp(t, `^[0-9a-f]{8}$`, id)
}

// closeBoth closes our end of a stream, then NodePass's end after reading it to EOF.
//
// Our StreamConn.Close sends FIN and stops reading (STOP_SENDING), so the stream is finished on
// our side at once. NodePass's StreamConn.Close only sends FIN: its receive side is finished, and
// the stream's credit returned to the client, only once it has read the peer's FIN. A NodePass
// end that is closed without reading to EOF keeps its stream open for ever,
// so NodePass's end is drained first. Its Close may then report that its send side was already
// cancelled by our STOP_SENDING; that is expected and ignored.
func closeBoth(t testing.TB, ours, theirs net.Conn) {
	t.Helper()
	require.NoError(t, ours.Close())
	_, err := io.Copy(io.Discard, theirs)
	require.NoError(t, err, "reading NodePass's end to EOF")
	_ = theirs.Close()
}

// controlChannel takes the control stream on both sides and exchanges data both ways on it.
func controlChannel(t testing.TB, ours, theirs interface {
	OutgoingGet(string, time.Duration) (net.Conn, error)
}, cert *testCert, ourSideIsServer bool) (ourConn, theirConn net.Conn) {
	t.Helper()
	ourConn, err := ours.OutgoingGet(quicpool.ControlID, getTimeout)
	require.NoError(t, err, "our pool's control stream")
	ourID(t, ourConn, quicpool.ControlID)
	theirConn, err = theirs.OutgoingGet(quicpool.ControlID, getTimeout)
	require.NoError(t, err, "NodePass's control stream")
	deadline(t, ourConn, theirConn)
	if ourSideIsServer {
		checkTLS(t, ourConn, nil)
		checkTLS(t, theirConn, cert)
	} else {
		checkTLS(t, ourConn, cert)
		checkTLS(t, theirConn, nil)
	}
	// Small messages as a control channel carries them, then a larger block each way.
	for i := range 3 {
		msg := fmt.Appendf(nil, "control %d from quicpool\n", i)
		_, err := ourConn.Write(msg)
		require.NoError(t, err)
		got := make([]byte, len(msg))
		_, err = io.ReadFull(theirConn, got)
		require.NoError(t, err)
		require.Equal(t, msg, got)

		msg = fmt.Appendf(nil, "control %d from nodepass\n", i)
		_, err = theirConn.Write(msg)
		require.NoError(t, err)
		got = make([]byte, len(msg))
		_, err = io.ReadFull(ourConn, got)
		require.NoError(t, err)
		require.Equal(t, msg, got)
	}
	exchange(t, ourConn, theirConn, 64<<10)
	return ourConn, theirConn
}

// ---------------------------------------------------------------------------------------------
// Tests

// TestOurClientTheirServer: our client pool against a NodePass server pool. The control stream
// 00000000 is taken by ID on both sides and carries data both ways; then tunnel streams are taken
// with NodePass's IncomingGet and our OutgoingGet(id), 1 KiB each way, and closed. There are more
// round trips than NodePass's stream limit, so stream credit must come back.
func TestOurClientTheirServer(t *testing.T) {
	const maxCap = 8
	ours, their, cert := ourClientTheirServer(t, maxCap)

	// The control stream first: NodePass's IncomingGet would hand it out too.
	ourCtl, theirCtl := controlChannel(t, ours, their, cert, false)

	seen := map[string]bool{quicpool.ControlID: true}
	for range 3 * maxCap {
		id, theirConn, err := their.IncomingGet(getTimeout)
		require.NoError(t, err)
		validID(t, id)
		require.NotEqual(t, quicpool.ControlID, id, "NodePass handed out the control stream twice")
		require.False(t, seen[id], "NodePass issued ID %s twice", id)
		seen[id] = true
		ourConn, err := ours.OutgoingGet(id, getTimeout)
		require.NoError(t, err)
		ourID(t, ourConn, id)
		deadline(t, ourConn, theirConn)
		exchange(t, ourConn, theirConn, payloadLen)
		closeBoth(t, ourConn, theirConn)
	}

	// The control stream still works after the tunnels, in both directions.
	exchange(t, ourCtl, theirCtl, payloadLen)
	closeBoth(t, ourCtl, theirCtl)
	quiesce(t, ours, maxCap)
}

// TestTheirClientOurServer: a NodePass client pool against our server pool. Same checks; our
// IncomingGet never hands out the control stream, even before it is taken.
func TestTheirClientOurServer(t *testing.T) {
	const maxCap = 8
	ours, their, cert := theirClientOurServer(t, maxCap, 4, maxCap)

	// Our IncomingGet skips the control stream even while it is idle: take every other idle
	// stream without waiting, and close them on both sides.
	for {
		id, ourConn, err := ours.IncomingGet(0)
		if errors.Is(err, quicpool.ErrTimeout) {
			break
		}
		require.NoError(t, err)
		require.NotEqual(t, quicpool.ControlID, id, "our IncomingGet handed out the control stream")
		theirConn, err := their.OutgoingGet(id, getTimeout)
		require.NoError(t, err)
		deadline(t, ourConn, theirConn)
		closeBoth(t, ourConn, theirConn)
	}

	ourCtl, theirCtl := controlChannel(t, ours, their, cert, true)

	seen := map[string]bool{quicpool.ControlID: true}
	for range 3 * maxCap {
		id, ourConn, err := ours.IncomingGet(getTimeout)
		require.NoError(t, err)
		validID(t, id)
		require.NotEqual(t, quicpool.ControlID, id, "our IncomingGet handed out the control stream")
		require.False(t, seen[id], "our server issued ID %s twice", id)
		seen[id] = true
		ourID(t, ourConn, id)
		theirConn, err := their.OutgoingGet(id, getTimeout)
		require.NoError(t, err)
		deadline(t, ourConn, theirConn)
		exchange(t, ourConn, theirConn, payloadLen)
		closeBoth(t, ourConn, theirConn)
	}

	exchange(t, ourCtl, theirCtl, payloadLen)
	closeBoth(t, ourCtl, theirCtl)
}

// TestTakeCloseCycles runs many more take/close cycles than the server's stream limit, with our
// end closed right after the round trip while unread data from NodePass is still pending on it:
// our StreamConn.Close must finish the stream on our side without reading to EOF.
//
// NodePass's own StreamConn.Close only closes the send side. Where NodePass is the server, the
// stream credit is NodePass's to return, and it does so only once its end has read our FIN; a
// NodePass end closed without reading to EOF stalls the pool after maxCap cycles (its defect;
// see the README's migration table), so there NodePass's end is drained before it is closed. Where
// we are the server, the credit is ours, and NodePass's end is closed without reading to EOF as
// well.
func TestTakeCloseCycles(t *testing.T) {
	const maxCap = 16

	t.Run("OurClientTheirServer", func(t *testing.T) {
		ours, their, cert := ourClientTheirServer(t, maxCap)
		ourCtl, theirCtl := controlChannel(t, ours, their, cert, false)
		// NodePass's stream limit is maxCap: 5 x maxCap cycles need the credit back each time.
		for i := range 5 * maxCap {
			id, theirConn, err := their.IncomingGet(getTimeout)
			require.NoError(t, err, "cycle %d", i)
			require.NotEqual(t, quicpool.ControlID, id)
			ourConn, err := ours.OutgoingGet(id, getTimeout)
			require.NoError(t, err, "cycle %d", i)
			deadline(t, ourConn, theirConn)
			exchange(t, ourConn, theirConn, payloadLen)
			_, err = theirConn.Write(randomPayload(t, payloadLen)) // never read by our end
			require.NoError(t, err)
			closeBoth(t, ourConn, theirConn)
		}
		closeBoth(t, ourCtl, theirCtl)
		quiesce(t, ours, maxCap)
	})

	t.Run("TheirClientOurServer", func(t *testing.T) {
		ours, their, cert := theirClientOurServer(t, maxCap, maxCap, maxCap)
		ourCtl, theirCtl := controlChannel(t, ours, their, cert, true)
		// Our server admits max(2*maxCap, 2*StreamsPerShard) open streams per connection
		// (config.go); run past that by 5 x maxCap so that a leaked credit stalls the pool.
		cycles := max(2*maxCap, 2*quicpool.StreamsPerShard) + 5*maxCap
		for i := range cycles {
			id, ourConn, err := ours.IncomingGet(getTimeout)
			require.NoError(t, err, "cycle %d", i)
			require.NotEqual(t, quicpool.ControlID, id)
			theirConn, err := their.OutgoingGet(id, getTimeout)
			require.NoError(t, err, "cycle %d", i)
			deadline(t, ourConn, theirConn)
			exchange(t, ourConn, theirConn, payloadLen)
			_, err = theirConn.Write(randomPayload(t, payloadLen)) // never read by our end
			require.NoError(t, err)
			require.NoError(t, ourConn.Close())
			_ = theirConn.Close() // no drain: the credit is our server's to return
		}
		exchange(t, ourCtl, theirCtl, payloadLen)
		closeBoth(t, ourCtl, theirCtl)
	})
}

// TestTheirClientAboveOurCap: a NodePass client whose capacity exceeds our server's maxCap by
// less than the 16 streams a connection may have held. NodePass treats any refused stream as a
// dead connection: it drops the connection without closing it and dials a new one, which a
// server whose slots the dropped connection (alive on keep-alives) still holds must refuse. Our
// server holds the extra streams without an ID until there is room (NodePass waits a minute
// for an ID), so none is refused and the pair keeps working. Further above our maxCap (64
// against 4) streams are refused and the client is locked out: a known gap, in the README.
func TestTheirClientAboveOurCap(t *testing.T) {
	cert := newTestCert(t)
	ours := startOurServer(t, 4, cert)
	their := startTheirClient(t, 8, 8, ours.Addr())
	t.Cleanup(func() {
		ours.Close()
		their.shutdown(t)
	})
	require.NoError(t, ours.WaitReady(waitCtx(t), 1))
	for i := range 40 {
		id, ourConn, err := ours.IncomingGet(getTimeout)
		require.NoError(t, err, "round trip %d", i)
		theirConn, err := their.OutgoingGet(id, getTimeout)
		require.NoError(t, err, "round trip %d: NodePass OutgoingGet(%s)", i, id)
		deadline(t, ourConn, theirConn)
		exchange(t, ourConn, theirConn, payloadLen)
		closeBoth(t, ourConn, theirConn)
	}
}

// A NodePass server's Flush closes the send side of every idle stream (FIN, no reset). Our client
// looks for STOP_SENDING and resets only, so it does not notice (as a NodePass client would not):
// it must not take the flush for a protocol violation, and its connection and control stream
// live on. A guard against a FIN-based check that would.
func TestTheirServerFlushIsNoViolation(t *testing.T) {
	const maxCap = 8
	ours, their, cert := ourClientTheirServer(t, maxCap)
	ourCtl, theirCtl := controlChannel(t, ours, their, cert, false)
	for range 3 {
		their.Flush()
	}
	exchange(t, ourCtl, theirCtl, payloadLen) // the connection lives on
	s := ours.Stats()
	require.Zero(t, s.Violations, "%+v", s)
	require.Zero(t, s.Restarts, "%+v", s)
	require.Equal(t, 1, s.ShardsUp)
	closeBoth(t, ourCtl, theirCtl)
}
