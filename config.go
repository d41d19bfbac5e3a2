package quicpool

import (
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool/internal/core"
	"github.com/quicpool/quicpool/internal/wire"
)

// The numbers of the protocol and of the NodePass pools quicpool replaces.
const (
	// ALPN is the TLS application protocol every pool speaks; a server forces it on its config.
	ALPN = "np-quic"
	// ControlID is the ID of the first stream a server pool issues, exactly once. NodePass uses
	// it as its control channel. Only OutgoingGet(ControlID) hands it out; IncomingGet never does.
	ControlID = wire.ControlID
	// StreamsPerShard is the capacity of one shard: a pool of maxCap streams has
	// ceil(maxCap/StreamsPerShard) shards (at least 1, at most MaxShards). A client keeps at most
	// this many idle streams on one connection; a server connection may hold up to maxCap divided
	// by the connections up (all of maxCap while it is alone).
	StreamsPerShard = 128
	// MaxShards is the most shards a pool has: the most QUIC connections a client dials, and the
	// most a server accepts from one IP address. A server keeps up to 2 x MaxShards in all.
	MaxShards = 64
	// MaxCapacity is the largest capacity a pool accepts: MaxShards connections of
	// StreamsPerShard streams.
	MaxCapacity = MaxShards * StreamsPerShard

	// Defaults of the NodePass-compatible constructors for arguments <= 0.
	compatMinCap   = 1
	compatMaxCap   = 1
	compatInterval = time.Second

	// Defaults of NewClient and NewServer.
	defaultMinCap = 8
	defaultMaxCap = 64
	defaultMinIvl = 100 * time.Millisecond
	defaultMaxIvl = time.Second

	defaultKeepAlive = 10 * time.Second
	// maxKeepAlive is the longest keep-alive period a pool accepts (the idle timeout is three).
	maxKeepAlive            = 24 * time.Hour
	defaultHandshakeTimeout = 10 * time.Second
	// maxConnHandshake bounds a connection's QUIC handshake (quic-go's default): a dial to a
	// server that does not answer fails within it, whatever the stream handshake timeout.
	maxConnHandshake = 5 * time.Second
	// holdTimeout is how long a full server holds a handshaken stream before refusing it. A
	// NodePass client waits a minute for a stream's ID and treats a refused stream as a dead
	// connection, so holding keeps it connected while the pool drains.
	holdTimeout = 30 * time.Second
)

// shardCount is how many QUIC connections a pool of maxCap streams uses:
// min(max(ceil(maxCap/128), 1), 64).
func shardCount(maxCap int) int {
	return min(max((maxCap+StreamsPerShard-1)/StreamsPerShard, 1), MaxShards)
}

// clientTLS builds the client's TLS config for a NodePass TLS code.
func clientTLS(tlsCode, hostname string) (*tls.Config, error) {
	conf := &tls.Config{NextProtos: []string{ALPN}, MinVersion: tls.VersionTLS13}
	switch tlsCode {
	case "0", "1":
		// "0": encrypted, unverified. "1": the server's certificate is self-signed; the caller
		// checks its fingerprint through StreamConn.ConnectionState.
		conf.InsecureSkipVerify = true
	case "2":
		conf.ServerName = hostname
	default:
		return nil, fmt.Errorf("%w: unknown TLS code %q (want \"0\", \"1\" or \"2\")", ErrInvalidConfig, tlsCode)
	}
	return conf, nil
}

// serverTLS checks that the server's TLS config has a certificate and forces the protocol on a
// copy of it.
func serverTLS(conf *tls.Config) (*tls.Config, error) {
	if conf == nil || (len(conf.Certificates) == 0 && conf.GetCertificate == nil && conf.GetConfigForClient == nil) {
		return nil, fmt.Errorf("%w: a server pool needs a TLS config with a certificate", ErrInvalidConfig)
	}
	if err := checkTLS(conf); err != nil {
		return nil, err
	}
	return forceProtocol(conf), nil
}

// checkTLS reports what in conf no QUIC handshake can work with: a MaxVersion below TLS 1.3
// (QUIC is TLS 1.3 only), or a certificate without its certificate data or its private key.
func checkTLS(conf *tls.Config) error {
	if conf.MaxVersion != 0 && conf.MaxVersion < tls.VersionTLS13 {
		return invalid("TLS MaxVersion %s: QUIC needs TLS 1.3", tls.VersionName(conf.MaxVersion))
	}
	for i, c := range conf.Certificates {
		if len(c.Certificate) == 0 || c.PrivateKey == nil {
			return invalid("TLS certificate %d has no certificate data or no private key", i)
		}
	}
	return nil
}

// resetKeyInfo and tokenKeyInfo are the HKDF info labels of a server's derived stateless reset
// key and of its token key.
const (
	resetKeyInfo = "quicpool stateless reset key v1"
	tokenKeyInfo = "quicpool token key v1"
)

// deriveTokenKey derives the key that protects a server's address-validation tokens from its
// stateless reset key (HKDF-SHA256, tokenKeyInfo as info): stable across restarts as that key
// is, so that a client keeps skipping the Retry with the token it was handed. Nil for nil.
func deriveTokenKey(reset *quic.StatelessResetKey) *quic.TokenGeneratorKey {
	if reset == nil {
		return nil
	}
	var key quic.TokenGeneratorKey
	raw, err := hkdf.Key(sha256.New, reset[:], nil, tokenKeyInfo, len(key))
	if err != nil {
		return nil
	}
	copy(key[:], raw)
	return &key
}

// deriveResetKey derives a server's QUIC stateless reset key from the private key of the first
// certificate in conf: HKDF-SHA256 (RFC 5869) with the key's PKCS #8 encoding as input keying
// material, no salt, and resetKeyInfo as info. The same certificate gives the same key in every
// process, so a server restarted after a crash answers a packet of a connection its previous
// process held with a stateless reset, and the client redials at once instead of waiting out its
// idle timeout. (quic-go answers only packets longer than 42 bytes: stream data, not a bare
// keep-alive PING; an idle connection is replaced once its silence makes it suspect.) HKDF is
// one-way: the derived key reveals nothing of the private key.
// It returns nil when conf has no static certificate (GetCertificate only): set a key with
// WithStatelessResetKey then.
func deriveResetKey(conf *tls.Config) *quic.StatelessResetKey {
	if len(conf.Certificates) == 0 || conf.Certificates[0].PrivateKey == nil {
		return nil
	}
	der, err := x509.MarshalPKCS8PrivateKey(conf.Certificates[0].PrivateKey)
	if err != nil {
		return nil
	}
	var key quic.StatelessResetKey
	raw, err := hkdf.Key(sha256.New, der, nil, resetKeyInfo, len(key))
	if err != nil {
		return nil
	}
	copy(key[:], raw)
	return &key
}

// forceProtocol returns a copy of conf that speaks TLS 1.3 and ALPN "np-quic" only.
func forceProtocol(conf *tls.Config) *tls.Config {
	conf = conf.Clone()
	conf.NextProtos = []string{ALPN}
	conf.MinVersion = tls.VersionTLS13
	return conf
}

// quicConfig is the QUIC config of both sides: an idle timeout of three keep-alive periods, a
// keep-alive PING every core.ProbeInterval (or keep-alive period, if shorter) so that a silent
// peer is noticed within a second, and a connection handshake bounded by the handshake timeout
// (at most 5s).
func quicConfig(keepAlive, handshake time.Duration) *quic.Config {
	return &quic.Config{
		KeepAlivePeriod:      min(keepAlive, core.ProbeInterval),
		MaxIdleTimeout:       3 * keepAlive,
		HandshakeIdleTimeout: min(handshake, maxConnHandshake),
	}
}

// clientQUIC is the client's QUIC config: the server never opens streams.
func clientQUIC(keepAlive, handshake time.Duration) *quic.Config {
	conf := quicConfig(keepAlive, handshake)
	conf.MaxIncomingStreams = -1
	conf.MaxIncomingUniStreams = -1
	// The tokens the server hands out (NEW_TOKEN) prove the client's address on its next dials,
	// to a restarted server too: a quicpool server asks every other connection to verify its
	// address with a Retry, a round trip.
	conf.TokenStore = quic.NewLRUTokenStore(4, 2*MaxShards)
	return conf
}

// serverQUIC is the server's QUIC config. Its stream limit is what a connection alone gets (room
// for every idle stream of the pool, as a NodePass client uses one connection, plus as many in
// use); the listener gives each connection its own share of that budget as it arrives.
func serverQUIC(keepAlive, handshake time.Duration, maxCap int) *quic.Config {
	conf := quicConfig(keepAlive, handshake)
	conf.MaxIncomingStreams = int64(max(2*maxCap, 2*StreamsPerShard))
	conf.MaxIncomingUniStreams = -1
	return conf
}

// allowClients returns the check for a server restricted to the given client addresses, each
// an IP or a CIDR prefix; "" entries are ignored, and no entries allow every address.
func allowClients(entries ...string) (func(net.Addr) error, error) {
	var prefixes []netip.Prefix
	for _, e := range entries {
		if e == "" {
			continue
		}
		if p, err := netip.ParsePrefix(e); err == nil {
			prefixes = append(prefixes, p.Masked())
			continue
		}
		ip, err := netip.ParseAddr(e)
		if err != nil {
			return nil, fmt.Errorf("%w: client address %q is neither an IP nor a CIDR prefix", ErrInvalidConfig, e)
		}
		prefixes = append(prefixes, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
	}
	if len(prefixes) == 0 {
		return nil, nil
	}
	return func(addr net.Addr) error {
		if udp, ok := addr.(*net.UDPAddr); ok {
			ip, _ := netip.AddrFromSlice(udp.IP)
			for _, p := range prefixes {
				if p.Contains(ip.Unmap()) {
					return nil
				}
			}
		}
		return fmt.Errorf("%w: %s", ErrUnauthorized, addr)
	}, nil
}

// StaticAddr returns an address resolver for NewClientPool that always returns addr.
func StaticAddr(addr string) func() (string, error) {
	return func() (string, error) { return addr, nil }
}
