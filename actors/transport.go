package actors

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	"github.com/anthdm/hollywood/actor"
	"github.com/quic-go/quic-go"
)

// dial resolves the server's address anew and dials one connection from a UDP socket of its own.
// release closes the socket; call it once the connection is closed.
func (rt *runtime) dial(ctx context.Context) (conn *quic.Conn, release func(), err error) {
	if err := ctx.Err(); err != nil { // the shard stopped: do not bother the resolver
		return nil, nil, err
	}
	addr, err := rt.Resolve()
	if err != nil {
		return nil, nil, fmt.Errorf("resolving server address: %w", err)
	}
	udpAddr, err := net.ResolveUDPAddr("udp", addr)
	if err == nil && udpAddr.Port == 0 { // the system would refuse the send: an address, not a failure to retry
		err = &net.AddrError{Err: "port 0 cannot be dialed", Addr: addr}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("resolving server address %q: %w", addr, err)
	}
	udp, err := net.ListenUDP("udp", rt.LocalAddr)
	if err != nil {
		return nil, nil, err
	}
	tr := &quic.Transport{Conn: udp}
	release = func() { _ = tr.Close(); _ = udp.Close() }
	conn, err = tr.Dial(ctx, udpAddr, rt.TLS, rt.QUIC)
	if err != nil {
		release()
		return nil, nil, fmt.Errorf("dialing %s: %w", addr, err)
	}
	return conn, release, nil
}

// listen opens the server's one UDP socket and QUIC listener. A connection from an address Allow
// refuses is refused before its TLS handshake, with CONNECTION_REFUSED, and reported to the
// supervisor; every other gets its stream credit from the supervisor (admission.go).
// closeTransport closes the socket; call it once every connection is closed.
func (rt *runtime) listen(engine *actor.Engine) (ln *quic.Listener, closeTransport func(), err error) {
	credit := &creditHandout{rt: rt, engine: engine}
	conf := rt.QUIC.Clone()
	conf.GetConfigForClient = func(info *quic.ClientInfo) (*quic.Config, error) {
		if rt.Allow != nil {
			if err := rt.Allow(info.RemoteAddr); err != nil {
				engine.Send(rt.supervisor, refusal{addr: info.RemoteAddr.String(), err: err, reason: refusedNotAllowed, perInitial: true})
				return nil, err
			}
		}
		return credit.config(rt.QUIC, info)
	}
	udpAddr, err := net.ResolveUDPAddr("udp", rt.ListenAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("resolving listen address %q: %w", rt.ListenAddr, err)
	}
	udp, err := net.ListenUDP("udp", udpAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("listening on %s: %w", rt.ListenAddr, err)
	}
	// Every client verifies its address with a Retry before its connection gets stream credit:
	// a spoofed Initial gets a stateless Retry, not credit held until its handshake times out.
	// A client with a token from an earlier connection (a quicpool client keeps them) skips it.
	tr := &quic.Transport{Conn: udp, StatelessResetKey: rt.ResetKey, TokenGeneratorKey: rt.TokenKey,
		ConnContext: credit.context, VerifySourceAddress: func(net.Addr) bool { return true }}
	ln, err = tr.Listen(rt.serverTLS(engine), conf)
	if err != nil {
		_ = tr.Close()
		_ = udp.Close()
		return nil, nil, fmt.Errorf("listening on %s: %w", rt.ListenAddr, err)
	}
	return ln, func() { _ = tr.Close(); _ = udp.Close() }, nil
}

// serverTLS is the server's TLS config: rt.TLS, and with rt.VerifyClient set, a client
// certificate asked of every client and vetted by VerifyClient during the handshake (in place of
// the config's ClientAuth and ClientCAs), then by the config's own VerifyConnection, if it has
// one. A client that either check rejects, or that presents no certificate, fails its handshake
// and is reported to the supervisor with its address.
func (rt *runtime) serverTLS(engine *actor.Engine) *tls.Config {
	if rt.VerifyClient == nil {
		return rt.TLS
	}
	base, conf := rt.TLS, rt.TLS.Clone()
	conf.GetConfigForClient = func(info *tls.ClientHelloInfo) (*tls.Config, error) {
		c := base
		if base.GetConfigForClient != nil {
			got, err := base.GetConfigForClient(info)
			if err != nil {
				return nil, err
			}
			if got != nil {
				c = got
			}
		}
		c = c.Clone()
		c.ClientAuth = tls.RequestClientCert // verified below, so that a refusal is counted
		addr, own := info.Conn.RemoteAddr(), c.VerifyConnection
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			err := rt.VerifyClient(cs.PeerCertificates)
			if err == nil && own != nil {
				err = own(cs) // the application's own check, after the pool's
			}
			if err != nil {
				engine.Send(rt.supervisor, refusal{addr: addr.String(), err: err, reason: refusedCertificate})
			}
			return err
		}
		return c, nil
	}
	return conf
}
