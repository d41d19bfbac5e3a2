package quicpool

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/anthdm/hollywood/actor"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/qlogwriter"
)

// Option configures a pool. Every constructor takes options after its other arguments, so a call
// written for NodePass compiles unchanged. One rule holds for every constructor: an invalid
// value, a nil Option, or an option that does not apply to the pool's side (a client-only option
// given to a server, or the reverse) is an error wrapping ErrInvalidConfig. NewClient and
// NewServer return it; NewClientPool and NewServerPool (which return no error) make every call of
// the pool fail with it. Options override the positional arguments of the NodePass-compatible
// constructors.
type Option func(*settings)

// side is the kind of pool an option applies to.
type side uint8

const (
	clientSide side = 1 << iota
	serverSide
	bothSides = clientSide | serverSide
)

// settings is everything a pool is built from.
type settings struct {
	side side  // the pool being built
	err  error // the first invalid value

	minCap, maxCap   int
	minIvl, maxIvl   time.Duration
	keepAlive        time.Duration
	handshakeTimeout time.Duration
	restart          RestartPolicy

	resolver    func() (string, error)          // client
	clientTLS   *tls.Config                     // client
	clientCerts []tls.Certificate               // client: presented for mutual TLS
	localAddr   *net.UDPAddr                    // client
	allowed     []string                        // server
	resetKey    *quic.StatelessResetKey         // server
	verify      func([]*x509.Certificate) error // server: client authentication

	name    string
	qlogDir string // "" for no qlog traces
	engine  *actor.Engine
	parent  *actor.Context
	log     *slog.Logger
}

func (s *settings) fail(err error) {
	if s.err == nil {
		s.err = err
	}
}

func (s *settings) apply(opts []Option) {
	for i, opt := range opts {
		if opt == nil {
			s.fail(invalid("option %d is nil", i+1))
			continue
		}
		opt(s)
	}
	if s.keepAlive > maxKeepAlive {
		s.fail(invalid("keep-alive %v (want at most %v)", s.keepAlive, maxKeepAlive))
	}
}

// only checks that an option applies to the pool's side; it reports whether it does.
func (s *settings) only(applies side, name string) bool {
	if s.side&applies != 0 {
		return true
	}
	kind := "client"
	if applies == serverSide {
		kind = "server"
	}
	s.fail(invalid("%s applies to %s pools only", name, kind))
	return false
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
}

// checkCapacity checks capacity bounds against what a pool can hold.
func checkCapacity(min, max int) error {
	switch {
	case min < 1 || max < min:
		return invalid("capacity %d..%d (want 1 <= min <= max)", min, max)
	case max > MaxCapacity:
		return invalid("capacity %d..%d: a pool holds at most %d streams (%d connections of %d)",
			min, max, MaxCapacity, MaxShards, StreamsPerShard)
	}
	return nil
}

// minInterval is the shortest refill interval: a tick more often than this only burns CPU (an
// interval given as a bare number, time.Duration(1), is a nanosecond).
const minInterval = time.Millisecond

// checkInterval checks a client's refill interval bounds.
func checkInterval(min, max time.Duration) error {
	if min < minInterval || max < min {
		return invalid("interval %v..%v (want %v <= min <= max)", min, max, minInterval)
	}
	return nil
}

// WithCapacity sets the number of idle streams a client pool keeps: tuned between min and max by
// use, starting at min. For a server pool, max is the most idle streams it holds. Needs
// 1 <= min <= max <= MaxCapacity. Both sides. NewClient default: 8..64; NewServer default: 64.
func WithCapacity(min, max int) Option {
	return func(s *settings) {
		if err := checkCapacity(min, max); err != nil {
			s.fail(err)
			return
		}
		s.minCap, s.maxCap = min, max
	}
}

// WithInterval sets a client pool's refill interval: tuned between min and max by how many
// streams are idle, starting at min. Streams taken are replaced without waiting for it: at once
// while the pool runs low and fewer than 8 opens are under way (or a WaitReady waits), otherwise
// in batches of up to 8 within 2ms. Needs 1ms <= min <= max. Client only. NewClient default:
// 100ms..1s.
func WithInterval(min, max time.Duration) Option {
	return func(s *settings) {
		if !s.only(clientSide, "WithInterval") {
			return
		}
		if err := checkInterval(min, max); err != nil {
			s.fail(err)
			return
		}
		s.minIvl, s.maxIvl = min, max
	}
}

// WithKeepAlive sets the QUIC keep-alive period; a connection silent for three periods is dead.
// Must be positive and at most 24h. Both sides. Default: 10s.
func WithKeepAlive(d time.Duration) Option {
	return func(s *settings) {
		if d <= 0 {
			s.fail(invalid("keep-alive %v (want > 0)", d))
			return
		}
		s.keepAlive = d
	}
}

// WithTLSConfig sets a client pool's TLS configuration (root CAs, server name, client
// certificates, or InsecureSkipVerify). The pool uses a copy with TLS 1.3 and ALPN "np-quic"
// forced. Client only (a server's TLS config is a constructor argument). NewClient default:
// verify the server's certificate against the host in its address. A MaxVersion below TLS 1.3,
// or a certificate without its data or its private key, is invalid.
func WithTLSConfig(conf *tls.Config) Option {
	return func(s *settings) {
		if !s.only(clientSide, "WithTLSConfig") {
			return
		}
		if conf == nil {
			s.fail(invalid("nil TLS config"))
			return
		}
		if err := checkTLS(conf); err != nil {
			s.fail(err)
			return
		}
		s.clientTLS = forceProtocol(conf)
	}
}

// WithResolver makes a client pool ask resolve for the server's address before every dial,
// instead of using the address it was created with (for DNS changes or failover). Client only.
// resolve is called from the dialing goroutines, possibly at once from several; an error or a
// panic fails that dial, retried after the restart backoff. It must return promptly: Close waits
// for a call in progress.
func WithResolver(resolve func() (string, error)) Option {
	return func(s *settings) {
		if !s.only(clientSide, "WithResolver") {
			return
		}
		if resolve == nil {
			s.fail(invalid("nil address resolver"))
			return
		}
		s.resolver = resolve
	}
}

// WithAllowedClients restricts a server pool to clients whose address is one of the given IPs or
// within one of the given CIDR prefixes ("10.0.0.0/8", "2001:db8::/32"), in addition to the
// clientIP argument of NewServerPool when that is set. Other connections are refused before the
// TLS handshake, counted and logged. An entry that is neither an IP nor a prefix is an error, and
// so is an empty one (an unset variable must not open the server to everyone). Server only.
func WithAllowedClients(addrs ...string) Option {
	return func(s *settings) {
		if !s.only(serverSide, "WithAllowedClients") {
			return
		}
		if slices.Contains(addrs, "") {
			s.fail(invalid("empty client address in WithAllowedClients"))
			return
		}
		if _, err := allowClients(addrs...); err != nil {
			s.fail(err)
			return
		}
		s.allowed = append(s.allowed, addrs...)
	}
}

// WithStatelessResetKey sets the key a server pool derives its QUIC stateless reset tokens from.
// Keep it secret and the same across restarts: a restarted server then resets the connections its
// previous process held on their first packet longer than 42 bytes (stream data, not a bare
// keep-alive PING), and their clients redial at once. Server only.
// Default: derived from the private key of the server's certificate (HKDF-SHA256), which is stable
// as long as the certificate is; a TLS config with only GetCertificate gets no key unless this
// option sets one. The all-zero key is an error: anyone could forge its resets. The key that
// protects the address-validation tokens the server hands out is derived from it, so that
// clients keep skipping the Retry across restarts.
func WithStatelessResetKey(key quic.StatelessResetKey) Option {
	return func(s *settings) {
		if !s.only(serverSide, "WithStatelessResetKey") {
			return
		}
		if key == (quic.StatelessResetKey{}) {
			s.fail(invalid("all-zero stateless reset key"))
			return
		}
		s.resetKey = &key
	}
}

// WithClientCAs makes a server pool require mutual TLS: every client must present a certificate
// that chains to one of the CAs in pool (with the client-authentication usage, or none). A client
// without one is refused during the handshake (counted in Stats().Refused, logged, broadcast) and
// sees a TLS alert. This check takes the place of the server TLS config's ClientAuth and
// ClientCAs; its VerifyConnection, if any, still runs after it. Server only. See also
// WithClientFingerprints and, on the client, WithClientCertificate.
func WithClientCAs(pool *x509.CertPool) Option {
	return func(s *settings) {
		if !s.only(serverSide, "WithClientCAs") {
			return
		}
		if pool == nil {
			s.fail(invalid("nil client CA pool"))
			return
		}
		s.addClientCheck(func(chain []*x509.Certificate) error {
			opts := x509.VerifyOptions{Roots: pool, Intermediates: x509.NewCertPool(),
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
			for _, c := range chain[1:] {
				opts.Intermediates.AddCert(c)
			}
			_, err := chain[0].Verify(opts)
			return err
		})
	}
}

// WithClientFingerprints makes a server pool require mutual TLS with pinned client certificates:
// every client must present a certificate whose SHA-256 fingerprint (of its DER encoding, as hex,
// colons allowed) is one of fingerprints. With WithClientCAs as well, either check admits a
// client. Server only.
func WithClientFingerprints(fingerprints ...string) Option {
	return func(s *settings) {
		if !s.only(serverSide, "WithClientFingerprints") {
			return
		}
		pins := make(map[[sha256.Size]byte]bool, len(fingerprints))
		for _, fp := range fingerprints {
			raw, err := hex.DecodeString(strings.ReplaceAll(fp, ":", ""))
			if err != nil || len(raw) != sha256.Size {
				s.fail(invalid("client fingerprint %q is not a hex SHA-256", fp))
				return
			}
			pins[[sha256.Size]byte(raw)] = true
		}
		s.addClientCheck(func(chain []*x509.Certificate) error {
			if !pins[sha256.Sum256(chain[0].Raw)] {
				return errors.New("certificate fingerprint not pinned")
			}
			return nil
		})
	}
}

// addClientCheck adds a way for a client certificate to be accepted: a client is admitted if it
// presents a certificate and any check accepts it.
func (s *settings) addClientCheck(check func([]*x509.Certificate) error) {
	previous := s.verify
	s.verify = func(chain []*x509.Certificate) error {
		if len(chain) == 0 {
			return fmt.Errorf("%w: no client certificate", ErrUnauthorized)
		}
		err := check(chain)
		if err != nil && previous != nil && previous(chain) == nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: client certificate %q: %w", ErrUnauthorized, chain[0].Subject.CommonName, err)
		}
		return nil
	}
}

// WithClientCertificate makes a client pool present cert to the server, for a server that
// requires mutual TLS (WithClientCAs, WithClientFingerprints, or a tls.Config of its own that
// asks for client certificates). Client only.
func WithClientCertificate(cert tls.Certificate) Option {
	return func(s *settings) {
		if !s.only(clientSide, "WithClientCertificate") {
			return
		}
		if len(cert.Certificate) == 0 || cert.PrivateKey == nil {
			s.fail(invalid("client certificate without a certificate or a private key"))
			return
		}
		s.clientCerts = append(s.clientCerts, cert)
	}
}

// WithLocalAddr makes a client pool dial from the given local address ("127.0.0.2:0", or an
// interface's IP with port 0). Client only. The port must be 0: every connection binds a socket
// of its own, and so does a standby dialed while a silent connection still holds its socket, so
// a fixed port would leave all connections but one failing to bind.
func WithLocalAddr(addr string) Option {
	return func(s *settings) {
		if !s.only(clientSide, "WithLocalAddr") {
			return
		}
		udp, err := net.ResolveUDPAddr("udp", addr)
		switch {
		case err != nil:
			s.fail(invalid("local address %q: %w", addr, err))
		case udp.Port != 0:
			s.fail(invalid("local address %q: the port must be 0 (each connection binds its own socket)", addr))
		default:
			s.localAddr = udp
		}
	}
}

// WithRestartPolicy sets how the pool retries a failed connection (client) or listen (server).
// A client uses all of it: the backoff, the intensity limit (MaxRestarts within Window) and
// HealthyAfter. A server retries a failed listen with the backoff alone, starting over once it
// listens. Zero fields take their defaults; invalid ones (see RestartPolicy) are an error. Both
// sides. Default: DefaultRestartPolicy.
func WithRestartPolicy(p RestartPolicy) Option {
	return func(s *settings) {
		if err := p.validate(); err != nil {
			s.fail(err)
			return
		}
		s.restart = p
	}
}

// WithHandshakeTimeout bounds the handshakes: a connection's QUIC handshake (at most 5s, the
// QUIC default, whatever d is), and a stream's, that is how long a server waits for a new
// stream's first byte and how long a client waits for the stream's ID (a full server may hold a
// stream for up to 30s before giving it one; the client then resets it and opens another later).
// Must be positive. Both sides. Default: 10s.
func WithHandshakeTimeout(d time.Duration) Option {
	return func(s *settings) {
		if d <= 0 {
			s.fail(invalid("handshake timeout %v (want > 0)", d))
			return
		}
		s.handshakeTimeout = d
	}
}

// WithName names the pool: Stats.Name, a "pool" attribute on every log line, and the pool label
// of its metrics. A name is printable text of at most 64 bytes. Both sides. Default: "".
func WithName(name string) Option {
	return func(s *settings) {
		if len(name) > 64 || strings.IndexFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
			s.fail(invalid("pool name %q (want printable text of at most 64 bytes)", name))
			return
		}
		s.name = name
	}
}

// WithQlogDir makes every QUIC connection of the pool write a qlog trace of its packets,
// frames, congestion and loss recovery into the directory dir, created if missing: one file per
// connection, named ODCID_client.sqlog or ODCID_server.sqlog after the connection's original
// destination connection ID (as quic-go's QLOGDIR does, so the two sides of a connection share a
// name), in qlog's JSON-SEQ format (RFC 7464). A file is complete once its connection has closed.
// Open the files in qvis (https://qvis.quictools.info). Tracing costs CPU and disk on every packet:
// turn it on to investigate, not for good. A file that cannot be created is logged and that
// connection goes untraced. An empty dir, or one that cannot be created, is an error. Both sides.
// Default: no traces.
func WithQlogDir(dir string) Option {
	return func(s *settings) {
		if dir == "" {
			s.fail(invalid("empty qlog directory"))
			return
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			s.fail(invalid("qlog directory: %w", err))
			return
		}
		s.qlogDir = dir
	}
}

// qlogTracer returns the quic.Config Tracer of WithQlogDir: each connection writes its trace into
// its own file in the directory through quic-go's qlog writer, whose goroutine ends when the
// connection closes and flushes the file. It returns nil without WithQlogDir.
func (s *settings) qlogTracer() func(context.Context, bool, quic.ConnectionID) qlogwriter.Trace {
	dir, log := s.qlogDir, s.log
	if dir == "" {
		return nil
	}
	if log == nil {
		log = discardLogger
	}
	if s.name != "" {
		log = log.With("pool", s.name)
	}
	return func(_ context.Context, isClient bool, odcid quic.ConnectionID) qlogwriter.Trace {
		perspective := "server"
		if isClient {
			perspective = "client"
		}
		path := filepath.Join(dir, fmt.Sprintf("%s_%s.sqlog", odcid, perspective))
		f, err := os.Create(path)
		if err != nil {
			log.Warn("qlog: cannot create the trace file; this connection is not traced", "err", err)
			return nil
		}
		trace := qlogwriter.NewConnectionFileSeq(&bufferedFile{bufio.NewWriter(f), f}, isClient, odcid)
		go trace.Run()
		return trace
	}
}

// bufferedFile is a qlog file written through a buffer, flushed when it is closed.
type bufferedFile struct {
	*bufio.Writer
	f *os.File
}

func (b *bufferedFile) Close() error {
	return errors.Join(b.Flush(), b.f.Close())
}

// WithLogger sends the pool's events (connections, failures, restarts, refused peers) to l.
// Both sides. Default: the pool logs nothing. A panic in l's handler is recovered and costs only
// the record it was handling. A nil l, or one with no handler (a zero slog.Logger), is invalid.
func WithLogger(l *slog.Logger) Option {
	return func(s *settings) {
		switch {
		case l == nil:
			s.fail(invalid("nil logger"))
		case l.Handler() == nil:
			s.fail(invalid("logger with no handler"))
		default:
			s.log = slog.New(recoveringHandler{l.Handler()})
		}
	}
}

// WithEngine runs the pool's actors on an existing hollywood engine instead of one of its own, so
// that actors of the embedding system can send the pool messages (see Pool.Coordinator and
// package messages). With WithParent as well, e must be the parent's engine. Both sides.
func WithEngine(e *actor.Engine) Option {
	return func(s *settings) {
		switch {
		case e == nil:
			s.fail(invalid("nil engine"))
		case s.parent != nil && e != s.parent.Engine():
			s.fail(invalid("WithEngine names another engine than WithParent's"))
		default:
			s.engine = e
		}
	}
}

// WithParent makes the pool's actors children of the actor whose Receive is running: the pool
// lives on that actor's engine and stops when that actor stops (calls then fail with ErrClosed;
// Close still waits for the pool's goroutines). Call the constructor from inside Receive, where c
// is valid; the constructor does not block. Both sides.
//
// hollywood stops a parent by poisoning each child and waiting for it without a deadline, and
// that wait never ends for a child that was already stopping: call Close before you stop the
// parent, or from its actor.Stopped (which a restart after a panic delivers too: the pool of the
// incarnation that stopped must be closed there), never while the parent's stop is under way, and
// never poison the pool's actors (they are among c.Children()) yourself.
func WithParent(c *actor.Context) Option {
	return func(s *settings) {
		switch {
		case c == nil:
			s.fail(invalid("nil parent context"))
		case s.engine != nil && s.engine != c.Engine():
			s.fail(invalid("WithParent's engine differs from the one already given (WithEngine, or an earlier WithParent)"))
		default:
			s.parent, s.engine = c, c.Engine()
		}
	}
}
