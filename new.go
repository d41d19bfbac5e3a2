package quicpool

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"time"

	"github.com/quicpool/quicpool/internal/core"
)

// NewClient starts a client pool that keeps streams to the server at addr ("host:port") ready,
// and returns at once; use WaitReady to wait for the first streams. By default it keeps 8..64
// idle streams, refills every 100ms..1s, and verifies the server's certificate against the host
// in addr; see the With options to change that. It fails only on invalid arguments
// (ErrInvalidConfig); connection failures are retried (see RestartPolicy) and reported by Err.
func NewClient(addr string, opts ...Option) (*Pool, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, invalid("server address %q: %w", addr, err)
	}
	if n, err := net.LookupPort("udp", port); err != nil || n == 0 {
		return nil, invalid("server address %q: the port must be a number from 1 to 65535, or a service name", addr)
	}
	s := settings{
		side:   clientSide,
		minCap: defaultMinCap, maxCap: defaultMaxCap, minIvl: defaultMinIvl, maxIvl: defaultMaxIvl,
		keepAlive: defaultKeepAlive, handshakeTimeout: defaultHandshakeTimeout,
		resolver: StaticAddr(addr), clientTLS: forceProtocol(&tls.Config{}),
	}
	s.apply(opts)
	if s.err != nil {
		return nil, s.err
	}
	if s.clientTLS.ServerName == "" && !s.clientTLS.InsecureSkipVerify {
		s.clientTLS = s.clientTLS.Clone()
		s.clientTLS.ServerName = host
	}
	p := newClient(s)
	p.start()
	return p, nil
}

// NewServer starts a server pool listening on addr ("host:port"; port 0 picks a free one, see
// Addr). tlsConfig must carry a certificate with its private key (or GetCertificate) and allow
// TLS 1.3; the pool uses a copy with TLS 1.3 and ALPN "np-quic" forced. By default it holds up
// to 64 idle streams (WithCapacity sets the maximum). Like net.Listen it returns the listen
// error, if any; except with WithParent, where it does not wait for the listener (use WaitReady
// or Err).
func NewServer(addr string, tlsConfig *tls.Config, opts ...Option) (*Pool, error) {
	s := settings{
		side:   serverSide,
		minCap: defaultMaxCap, maxCap: defaultMaxCap,
		keepAlive: defaultKeepAlive, handshakeTimeout: defaultHandshakeTimeout,
	}
	if addr == "" {
		s.fail(invalid("empty listen address"))
	}
	s.apply(opts)
	p := newServer(s, addr, tlsConfig, "")
	if p.cfg.Err != nil {
		p.Close()
		return nil, p.cfg.Err
	}
	p.start()
	if s.parent != nil {
		return p, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeDeadline)
	defer cancel()
	if err := p.WaitReady(ctx, 0); err != nil {
		p.Close()
		var op *OpError
		if errors.As(err, &op) {
			err = op.Err
		}
		return nil, err
	}
	return p, nil
}

// NewClientPool creates a client pool, as NodePass's quic.NewClientPool does. It keeps between
// minCap and maxCap idle streams (the capacity is tuned between them by use), refilling every
// minIvl..maxIvl (also tuned) and, for taken streams, without waiting for the tick. It dials
// min(max(ceil(maxCap/128),1),64) QUIC connections to the address addrResolver returns (asked
// anew for every dial). tlsCode is "0" (encrypted, not verified), "1" (self-signed server:
// compare its fingerprint through StreamConn.ConnectionState) or "2" (verify the certificate
// chain against hostname).
//
// Arguments <= 0 take NodePass's defaults: 1 stream, 1s interval (and 10s keep-alive); min > max
// swaps. An invalid argument (maxCap above MaxCapacity, an interval below 1ms, an unknown TLS
// code, a nil resolver, an invalid option) does not panic: the pool's calls fail with an error
// wrapping ErrInvalidConfig. Nothing connects until ClientManager is called, and only the pool's
// coordinator waits for requests (on a goroutine of its own, which Close ends).
func NewClientPool(minCap, maxCap int, minIvl, maxIvl, keepAlive time.Duration, tlsCode, hostname string,
	addrResolver func() (string, error), opts ...Option) *Pool {
	s := settings{side: clientSide, keepAlive: orDefault(keepAlive, defaultKeepAlive),
		handshakeTimeout: defaultHandshakeTimeout, resolver: addrResolver}
	s.minCap, s.maxCap = normalize(minCap, maxCap, compatMinCap, compatMaxCap)
	s.minIvl, s.maxIvl = normalize(minIvl, maxIvl, compatInterval, compatInterval)
	tlsConf, tlsErr := clientTLS(tlsCode, hostname)
	s.clientTLS = tlsConf
	s.apply(opts)
	if err := checkCapacity(s.minCap, s.maxCap); err != nil { // after the options, which override them
		s.fail(err)
	}
	if err := checkInterval(s.minIvl, s.maxIvl); err != nil {
		s.fail(err)
	}
	switch {
	case s.clientTLS == nil:
		s.fail(tlsErr)
	case s.resolver == nil:
		s.fail(invalid("nil address resolver"))
	}
	return newClient(s)
}

// NewServerPool creates a server pool, as NodePass's quic.NewServerPool does. It listens on one
// UDP socket at listenAddr, accepts up to min(max(ceil(maxCap/128),1),64) client connections
// from one IP address and twice as many in all (only from clientIP when it is not ""; see also
// WithAllowedClients), and holds at most maxCap idle streams. tlsConfig must carry a
// certificate with its private key (or GetCertificate) and allow TLS 1.3; the pool uses a copy
// with TLS 1.3 and ALPN "np-quic" forced.
//
// maxCap <= 0 takes 1, keepAlive <= 0 takes 10s. An invalid argument (maxCap above MaxCapacity,
// no certificate, an empty listen address, a clientIP that is not an IP, an invalid option) does
// not panic: the pool's calls fail with an error wrapping ErrInvalidConfig. Nothing listens until
// ServerManager is called, and only the pool's coordinator waits for requests (on a goroutine of
// its own, which Close ends).
func NewServerPool(maxCap int, clientIP string, tlsConfig *tls.Config, listenAddr string, keepAlive time.Duration,
	opts ...Option) *Pool {
	maxCap = orDefault(maxCap, compatMaxCap)
	s := settings{side: serverSide, minCap: maxCap, maxCap: maxCap, keepAlive: orDefault(keepAlive, defaultKeepAlive),
		handshakeTimeout: defaultHandshakeTimeout}
	if listenAddr == "" {
		s.fail(invalid("empty listen address"))
	}
	s.apply(opts)
	if err := checkCapacity(1, s.maxCap); err != nil { // after the options, which override maxCap
		s.fail(err)
	}
	return newServer(s, listenAddr, tlsConfig, clientIP)
}

func newClient(s settings) *Pool {
	cfg := s.config(true)
	cfg.TLS = s.clientTLS
	if len(s.clientCerts) > 0 && cfg.TLS != nil {
		cfg.TLS = cfg.TLS.Clone()
		cfg.TLS.Certificates = append(cfg.TLS.Certificates, s.clientCerts...)
	}
	cfg.QUIC = clientQUIC(s.keepAlive, s.handshakeTimeout)
	cfg.QUIC.Tracer = s.qlogTracer()
	cfg.Resolve, cfg.LocalAddr = s.resolver, s.localAddr
	return newPool(s, cfg)
}

func newServer(s settings, addr string, tlsConfig *tls.Config, clientIP string) *Pool {
	tlsConf, err := serverTLS(tlsConfig)
	if err != nil {
		s.fail(err)
	}
	allow, err := allowClients(append([]string{clientIP}, s.allowed...)...)
	if err != nil {
		s.fail(err)
	}
	cfg := s.config(false)
	cfg.TLS = tlsConf
	cfg.QUIC = serverQUIC(s.keepAlive, s.handshakeTimeout, s.maxCap)
	cfg.QUIC.Tracer = s.qlogTracer()
	cfg.ListenAddr, cfg.Allow, cfg.ResetKey, cfg.VerifyClient = addr, allow, s.resetKey, s.verify
	if cfg.ResetKey == nil && tlsConf != nil {
		cfg.ResetKey = deriveResetKey(tlsConf)
	}
	cfg.TokenKey = deriveTokenKey(cfg.ResetKey)
	return newPool(s, cfg)
}

// config is the part of the actors' configuration both sides share.
func (s settings) config(client bool) *core.Config {
	return &core.Config{
		Client: client, Err: s.err, PoolName: s.name,
		MinCap: s.minCap, MaxCap: s.maxCap, MinIvl: s.minIvl, MaxIvl: s.maxIvl,
		Shards: shardCount(s.maxCap), PerShard: StreamsPerShard,
		Policy: s.restart, HandshakeTimeout: s.handshakeTimeout, HoldTimeout: holdTimeout,
	}
}
