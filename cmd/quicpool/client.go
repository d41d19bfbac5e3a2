package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/quicpool/quicpool"
	"github.com/quicpool/quicpool/messages"
)

// clientConfig is what the client subcommand's flags set.
type clientConfig struct {
	Server      string        // the server pool's UDP address, host:port
	Listen      string        // TCP address to accept connections on; port 0 picks one
	MinCap      int           // the client pool's minimum idle streams
	MaxCap      int           // the client pool's maximum idle streams
	TLS         string        // "" (follow the flags below), or the TLS code "0", "1", "2"
	Fingerprint string        // SHA-256 of the server's certificate, hex: pin it
	CAFile      string        // PEM CA certificates: verify the server's chain and name
	ServerName  string        // the name verified with CAFile or TLS "2"; "" is -server's host
	Insecure    bool          // check nothing about the server
	KeepAlive   time.Duration // QUIC keep-alive: a connection silent for 3 periods is dead
	Retry       time.Duration // the longest pause between reconnection attempts
	Grace       time.Duration // how long shutdown waits for open tunnels
	Stats       time.Duration // period of the health line; 0 logs none
	Log         *slog.Logger  // never nil
	Debug       bool          // pass the pool's own log to Log
	observeConfig
}

// errNoTrust is why a client refuses to start without a way to check its server.
var errNoTrust = errors.New("refusing to connect to a server whose identity is not checked; pass one of\n" +
	"  -fingerprint HEX  the server's certificate fingerprint, which the server prints when it starts\n" +
	"  -ca FILE          the CA certificate that signed the server's certificate (PEM)\n" +
	"  -insecure         encrypt, but accept any server (anyone on the path can read and change the traffic)")

func (c clientConfig) validate() error {
	switch {
	case c.Server == "":
		return errors.New("-server HOST:PORT is required: the address the server listens on")
	case c.Listen == "":
		return errors.New("-listen is required")
	case c.MinCap < 1:
		return errors.New("-min must be at least 1")
	case c.MaxCap < c.MinCap || c.MaxCap > quicpool.MaxCapacity:
		return fmt.Errorf("-max must be between -min and %d", quicpool.MaxCapacity)
	case c.Retry < 100*time.Millisecond:
		return errors.New("-retry must be at least 100ms")
	}
	if err := cmp.Or(checkPeriods(c.KeepAlive, c.Grace, c.Stats),
		checkAddr("-server", "udp", c.Server, false), checkAddr("-listen", "tcp", c.Listen, true)); err != nil {
		return err
	}
	fp, err := parseFingerprint(c.Fingerprint)
	if err != nil {
		return err
	}
	choices := 0
	for _, set := range []bool{fp != "", c.CAFile != "", c.Insecure} {
		if set {
			choices++
		}
	}
	switch {
	case choices > 1:
		return errors.New("-fingerprint, -ca and -insecure exclude each other: pass one")
	case c.ServerName != "" && c.CAFile == "" && c.TLS != "2":
		return errors.New("-servername goes with -ca or -tls 2")
	}
	switch c.TLS {
	case "":
		if choices == 0 {
			return errNoTrust
		}
	case "0":
		if c.CAFile != "" {
			return errors.New("-tls 0 checks nothing about the server and would ignore -ca: use -tls 2, or leave -tls out")
		}
		if !c.Insecure {
			return errors.New("-tls 0 checks nothing about the server: add -insecure to confirm, or pass -fingerprint instead")
		}
	case "1":
		if c.CAFile != "" {
			return errors.New("-tls 1 checks the server by -fingerprint, not -ca: use -tls 2 with -ca, or leave -tls out")
		}
		if fp == "" {
			return errors.New("-tls 1 (a self-signed server) needs -fingerprint HEX, which the server prints when it starts")
		}
	case "2":
		if fp != "" || c.Insecure {
			return errors.New("-tls 2 verifies the server's certificate chain: use it with -ca FILE, or alone for the system's CAs")
		}
	default:
		return fmt.Errorf("-tls %q: want 0, 1 or 2", c.TLS)
	}
	return c.observeConfig.validate()
}

// tlsConfig returns the TLS config that checks the server as the flags ask, and the check in
// words: a pinned fingerprint is compared during the handshake (a server with another
// certificate is never sent a byte), a CA verifies the chain and the name.
func (c clientConfig) tlsConfig() (*tls.Config, string, error) {
	fp, _ := parseFingerprint(c.Fingerprint)
	switch {
	case fp != "":
		return &tls.Config{InsecureSkipVerify: true, VerifyConnection: pin(fp)}, "server certificate pinned by fingerprint", nil
	case c.Insecure || c.TLS == "0":
		return &tls.Config{InsecureSkipVerify: true}, "server identity NOT checked (-insecure)", nil
	}
	name := c.ServerName
	if name == "" {
		name, _, _ = net.SplitHostPort(c.Server)
	}
	conf := &tls.Config{ServerName: name}
	if c.CAFile == "" {
		return conf, fmt.Sprintf("server certificate verified for %s against the system's CAs", name), nil
	}
	roots, err := loadCA(c.CAFile)
	if err != nil {
		return nil, "", fmt.Errorf("-ca: %w", err)
	}
	conf.RootCAs = roots
	return conf, fmt.Sprintf("server certificate verified for %s against %s", name, c.CAFile), nil
}

// pin returns a TLS check that accepts only a server certificate with the fingerprint want.
func pin(want string) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("the server presented no certificate")
		}
		if got := fingerprint(cs.PeerCertificates[0].Raw); got != want {
			return fmt.Errorf("the server's certificate fingerprint %s does not match -fingerprint %s", got, want)
		}
		return nil
	}
}

// client is one run of the client side.
type client struct {
	cfg     clientConfig
	pool    *quicpool.Pool
	tunnels *tracker
	fatal   chan error // a failure the client cannot start with
	broken  throttle   // the warnings of tunnels that ended on a problem: one a second of each kind

	link chan *link // what the client knows of its server; one goroutine at a time owns it
}

// link is what the client knows of its server. Whoever takes it out of client.link owns it until
// it puts it back (see withLink).
type link struct {
	up       bool          // a connection to the server serves: tunnels are accepted
	lost     chan struct{} // closed when the server is lost; tunnels waiting for it give up
	refused  int           // connections refused since the server was lost
	refusals thinned       // their log lines
}

// withLink runs f with the client's link, owning it.
func (c *client) withLink(f func(*link)) {
	l := <-c.link
	defer func() { c.link <- l }()
	f(l)
}

// runClient runs the client side of the tunnel until ctx is done, then drains its tunnels (see
// shutdown) and returns nil. It writes its addresses and how the server is checked to w.
//
// It listens at once and never gives up on the server: while no connection to it serves, every
// TCP connection is refused at once (reset), and the pool keeps reconnecting; the outage and
// the recovery are logged. The error is for a client that could not start: a listen error, or a
// server that fails the identity check (or is no quicpool server) before it was ever reached.
func runClient(ctx context.Context, cfg clientConfig, w io.Writer) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	tlsConf, check, err := cfg.tlsConfig()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	defer ln.Close()

	observe, err := cfg.observeConfig.options()
	if err != nil {
		return err
	}
	opts := append([]quicpool.Option{
		quicpool.WithTLSConfig(tlsConf),
		quicpool.WithRestartPolicy(quicpool.RestartPolicy{MaxBackoff: cfg.Retry}),
	}, append(poolLogger(cfg.Log, cfg.Debug), observe...)...)
	host, _, _ := net.SplitHostPort(cfg.Server)
	p := quicpool.NewClientPool(cfg.MinCap, cfg.MaxCap, 100*time.Millisecond, time.Second, cfg.KeepAlive,
		"2", host, quicpool.StaticAddr(cfg.Server), opts...)
	c := &client{cfg: cfg, pool: p, tunnels: newTracker(), fatal: make(chan error, 1), link: make(chan *link, 1),
		broken: newThrottle()}
	lost := make(chan struct{})
	close(lost) // no server yet
	c.link <- &link{lost: lost}
	events, unwatch := watch(p) // before the pool starts: no event is missed
	defer unwatch()
	go p.ClientManager()

	stopMetrics, err := cfg.serveMetrics("client", p, w) // first: a client that cannot serve them never says it listens
	if err != nil {
		p.Close()
		return err
	}
	defer stopMetrics()
	fmt.Fprintf(w, "quicpool client: listening on %s, forwarding to %s, %s\n", ln.Addr(), cfg.Server, check)
	cfg.Log.Info("waiting for the server", "server", cfg.Server)

	var wg sync.WaitGroup
	monitorCtx, stopMonitor := context.WithCancel(context.Background())
	defer stopMonitor()
	wg.Go(func() { c.monitor(monitorCtx, events) })
	wg.Go(func() { c.accept(ln, &wg) })
	select {
	case <-ctx.Done():
	case err = <-c.fatal:
	}
	_ = ln.Close() // no new tunnels; the accept loop ends
	stopMonitor()
	if err != nil {
		p.Close()
		wg.Wait()
		return err
	}
	shutdown(cfg.Log, c.tunnels, cfg.Grace, p, &wg)
	return nil
}

// accept accepts TCP connections until ln is closed. Each becomes a tunnel (a goroutine of wg)
// while the server is reachable, and is refused at once (reset) while it is not.
func (c *client) accept(ln net.Listener, wg *sync.WaitGroup) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			c.cfg.Log.Error("cannot accept connections", "reason", err.Error())
			time.Sleep(100 * time.Millisecond) // out of file descriptors, say: do not spin
			continue
		}
		tc := conn.(*net.TCPConn)
		lost, up := c.state()
		switch {
		case !up:
			abort(tc, nil)
			c.logRefusal(tc)
		case !c.tunnels.begin(): // shutting down (the listener is about to close)
			abort(tc, nil)
		default:
			wg.Go(func() { c.tunnel(tc, lost) })
		}
	}
}

// state returns whether the server is reachable, and the channel closed when it is lost.
func (c *client) state() (lost <-chan struct{}, up bool) {
	c.withLink(func(l *link) { lost, up = l.lost, l.up })
	return lost, up
}

// logRefusal logs a connection refused because the server is unreachable: at most one line a
// second, which counts the others.
func (c *client) logRefusal(tc *net.TCPConn) {
	c.withLink(func(l *link) {
		l.refused++
		if now, skipped := l.refusals.log(); now {
			c.cfg.Log.Warn("refused a connection: the server is unreachable", "from", tc.RemoteAddr().String(),
				"also_refused", skipped) // since the last such line
		}
	})
}

// Errors that end a tunnel before it starts.
var (
	errNoTarget   = errors.New("the server cannot reach its target")
	errLost       = errors.New("the server was lost before the tunnel started")
	errNoStatus   = errors.New("no answer from the server")
	errNotOpened  = errors.New("the server did not open the tunnel")
	errStopping   = errors.New("the server is shutting down")
	tunnelProblem = []error{errNoTarget, errLost, errNoStatus, errNotOpened, errStopping}
)

// tunnel forwards one accepted TCP connection: it takes an idle stream, says hello on it and
// pipes the two until both have closed. The server's status byte is awaited beside the upload;
// if the server is lost before it arrives, the tunnel is cut at once.
func (c *client) tunnel(tc *net.TCPConn, lost <-chan struct{}) {
	defer c.tunnels.end()
	log := c.cfg.Log.With("from", tc.RemoteAddr().String())
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), streamTimeout)
	stop := onClose(lost, cancel)
	st, err := c.pool.Accept(ctx)
	stop()
	cancel()
	if err != nil {
		abort(tc, nil)
		log.Warn("refused a connection: no stream to the server", "reason", reason(err))
		return
	}
	log = log.With("stream", st.ID())
	if _, err := io.WriteString(st, tunnelHello); err != nil {
		abort(tc, st)
		log.Warn("refused a connection: the stream to the server failed", "reason", reason(err))
		return
	}
	log.Debug("tunnel opened")
	up, down, err := pipe(tc, st, c.tunnels.carriedUp, c.tunnels.carriedDown, func() error { return awaitStatus(st, lost) })
	attrs := closed(up, down, start, err)
	level := slog.LevelDebug
	for _, e := range tunnelProblem {
		if errors.Is(err, e) {
			var skipped int
			if level, skipped = c.broken.level(e.Error(), slog.LevelWarn); level == slog.LevelWarn {
				attrs = append(attrs, "also_closed", skipped)
			}
			break
		}
	}
	log.Log(context.Background(), level, "tunnel closed", attrs...)
}

// awaitStatus reads the server's status byte, giving up after statusTimeout or when lost is
// closed.
func awaitStatus(st *quicpool.StreamConn, lost <-chan struct{}) error {
	_ = st.SetReadDeadline(time.Now().Add(statusTimeout))
	stop := onClose(lost, func() { _ = st.SetReadDeadline(time.Now()) })
	var b [1]byte
	_, err := io.ReadFull(st, b[:])
	stop() // before the deadline is cleared: the lost check cannot set it afterwards
	lostNow := false
	select {
	case <-lost:
		lostNow = true
	default:
	}
	switch {
	case err != nil && lostNow:
		return errLost
	case err != nil:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return fmt.Errorf("%w within %v", errNoStatus, statusTimeout)
		}
		return fmt.Errorf("%w: %w", errNotOpened, err)
	case b[0] == statusNoTarget:
		return errNoTarget
	case b[0] == statusStopping:
		return errStopping
	case b[0] != statusOK:
		return fmt.Errorf("%w: unexpected status %d", errNotOpened, b[0])
	}
	return st.SetReadDeadline(time.Time{})
}

// onClose runs f in a goroutine once ch is closed, unless stop is called first; stop returns
// once f will not run or has returned.
func onClose(ch <-chan struct{}, f func()) (stop func()) {
	quit, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		select {
		case <-ch:
			f()
		case <-quit:
		}
	}()
	return func() { close(quit); <-exited }
}

// monitor follows the pool: it logs the connection to the server, its loss and its recovery,
// keeps c.up and c.lost, logs the health line every cfg.Stats, and reports a failure the client
// cannot start with on c.fatal. It returns when ctx is done.
func (c *client) monitor(ctx context.Context, events <-chan messages.Event) {
	log := c.cfg.Log
	poll := time.NewTicker(checkInterval)
	defer poll.Stop()
	stats := ticker(c.cfg.Stats)
	defer stats.Stop()
	var everUp, gaveUp bool // gaveUp: a failure the client cannot start with went to c.fatal
	var lostAt time.Time
	var lastFailure string // the connection failure logged last while the server is unreachable
	var full bool          // the server refused a connection for want of a slot since the client was last up
	for {
		select {
		case ev := <-events:
			switch ev.Kind {
			case messages.EventStatelessReset:
				log.Info("the server restarted: reconnecting")
			case messages.EventShardFailed:
				refused := errors.Is(ev.Err, quicpool.ErrPoolFull)
				switch {
				case ev.Permanent && !everUp:
					gaveUp = true
					select {
					case c.fatal <- fmt.Errorf("cannot connect to %s: %s", c.cfg.Server, reason(ev.Err)):
					default:
					}
				case ev.Permanent:
					lastFailure = reason(ev.Err) // said here: the poll below need not say it again
					log.Error("cannot connect to the server", "reason", lastFailure)
				case refused && !full:
					log.Warn("the server is full: it refuses this client's connection; retrying", "reason", reason(ev.Err),
						"fix", "raise the server's -clients, or stop another client on this address")
				}
				full = full || refused
			}
		case <-stats.C:
			st := c.pool.Stats()
			server := "unreachable"
			if c.isUp() {
				server = "up"
			}
			log.Info("health", append([]any{"server", server, "connections", answering(st)},
				health(st.Idle, st, c.tunnels)...)...)
		case <-poll.C:
		case <-ctx.Done():
			return
		}

		st := c.pool.Stats()
		// A permanent failure before the first connection (FailFast) ends the client: its event
		// may come after this look at the pool.
		if gaveUp || ctx.Err() != nil || errors.Is(st.Err, quicpool.ErrClosed) || (!everUp && st.FailFast) {
			continue // the client is stopping: nothing more to say of the pool ("yet" would mislead)
		}
		up := st.Err == nil && serving(st)
		var was bool
		var refused int
		c.withLink(func(l *link) {
			was, refused, l.up = l.up, l.refused, up
			switch {
			case up && !was:
				l.lost, l.refused = make(chan struct{}), 0
			case !up && was:
				close(l.lost)
			}
		})
		if up && !was {
			full = false
		}
		why := dialFailure(st.Err)
		switch {
		case up && !everUp:
			everUp = true
			log.Info("connected to the server", "server", c.cfg.Server, "rtt", rtt(st))
		case up && !was:
			log.Info("server reachable again: accepting connections", "outage", round(time.Since(lostAt)),
				"refused", refused, "rtt", rtt(st))
		case !up && was:
			lostAt, lastFailure = time.Now(), why
			var silent *quicpool.SilentError
			if errors.As(st.Err, &silent) {
				lostAt = silent.Since // the outage began when the server was last heard
			}
			log.Warn("server unreachable: refusing new connections until it is back", "reason", reason(st.Err),
				"tunnels_open", c.tunnels.Open())
		case !up && why != "" && why != lastFailure:
			// The pool's attempts have failed for a new reason: at the start, as soon as the
			// first attempts do (no answer within the handshake timeout, say), long before a
			// shard gives up on its fast redials.
			lastFailure = why
			log.Info("cannot connect to the server yet", "reason", why)
		}
	}
}

// dialFailure is why the pool has no connection, as a shard failure says it, or "" if it has a
// connection that is silent, if the server refused it (logged from the event), or no error.
func dialFailure(err error) string {
	if err == nil || errors.As(err, new(*quicpool.SilentError)) ||
		errors.Is(err, quicpool.ErrPoolFull) || errors.Is(err, quicpool.ErrUnauthorized) {
		return ""
	}
	return strings.TrimPrefix(reason(err), "no connection to the server: ")
}

// serving reports whether one of the pool's connections answers and has opened a stream: the
// server accepted it. A connection the server refuses (full) is up for a moment before the
// refusal arrives, and never opens one. A fresh connection counts once its first stream is open
// (a round trip after it came up).
func serving(st quicpool.Stats) bool {
	return slices.ContainsFunc(st.Conns, func(cs messages.ConnStats) bool { return !cs.Suspect && cs.Opened > 0 })
}

func (c *client) isUp() bool {
	_, up := c.state()
	return up
}

// rtt is the smallest smoothed round-trip time of the pool's connections.
func rtt(st quicpool.Stats) string {
	var best time.Duration
	for _, cs := range st.Conns {
		if best == 0 || cs.SmoothedRTT < best {
			best = cs.SmoothedRTT
		}
	}
	return best.Round(10 * time.Microsecond).String()
}
