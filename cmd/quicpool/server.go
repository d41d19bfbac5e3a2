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
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/quicpool/quicpool"
	"github.com/quicpool/quicpool/messages"
)

// serverConfig is what the server subcommand's flags set.
type serverConfig struct {
	Listen    string        // UDP address of the server pool; port 0 picks one
	Target    string        // TCP address every tunnel is forwarded to
	Clients   int           // connections one client IP address may hold; twice as many in all
	StateDir  string        // where the generated certificate is kept
	CertFile  string        // PEM certificate; with KeyFile, replaces the one in StateDir
	KeyFile   string        // PEM private key of CertFile
	Allow     []string      // client IPs and CIDR prefixes accepted; none accepts any
	KeepAlive time.Duration // QUIC keep-alive: a connection silent for 3 periods is dead
	Grace     time.Duration // how long shutdown waits for open tunnels
	Stats     time.Duration // period of the health line; 0 logs none
	Log       *slog.Logger  // never nil
	Debug     bool          // pass the pool's own log to Log
	observeConfig
}

func (c serverConfig) validate() error {
	switch {
	case c.Listen == "":
		return errors.New("-listen is required")
	case c.Target == "":
		return errors.New("-target is required: the TCP address to forward tunnels to, such as 127.0.0.1:8080")
	case c.Clients < 1 || c.Clients > quicpool.MaxShards:
		return fmt.Errorf("-clients must be between 1 and %d", quicpool.MaxShards)
	case (c.CertFile == "") != (c.KeyFile == ""):
		return errors.New("-cert and -key go together")
	case c.CertFile == "" && c.StateDir == "":
		return errors.New("no state directory to keep the server's certificate in: pass -state DIR (or -cert and -key)")
	}
	if err := cmp.Or(checkPeriods(c.KeepAlive, c.Grace, c.Stats),
		checkAddr("-listen", "udp", c.Listen, true), checkAddr("-target", "tcp", c.Target, false)); err != nil {
		return err
	}
	for _, a := range c.Allow {
		if _, err := netip.ParsePrefix(a); err == nil {
			continue
		}
		if _, err := netip.ParseAddr(a); err != nil {
			return fmt.Errorf("-allow: %q is neither an IP nor a CIDR prefix", a)
		}
	}
	return c.observeConfig.validate()
}

// identity returns the server's certificate and a sentence saying where it comes from: the
// -cert/-key pair, or the one kept in the state directory (created on first start).
func (c serverConfig) identity() (tls.Certificate, string, error) {
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		return cert, "certificate " + c.CertFile, err
	}
	cert, path, created, err := loadIdentity(c.StateDir)
	if err != nil {
		return cert, "", err
	}
	if created {
		return cert, fmt.Sprintf("new certificate saved to %s: keep this file to keep the fingerprint", path), nil
	}
	return cert, "certificate " + path, nil
}

// server is one run of the server side.
type server struct {
	cfg      serverConfig
	pool     *quicpool.Pool
	tunnels  *tracker
	noTarget throttle // "cannot reach the target": one line per tunnel while the target is down (one kind)
}

// runServer runs the server side of the tunnel until ctx is done, then drains its tunnels (see
// shutdown) and returns nil. It writes its address, the certificate's fingerprint and the client
// command line to w. The error is for a server that could not start.
//
// One server pool serves every client: it accepts up to cfg.Clients connections from one IP
// address and 2 x cfg.Clients in all (a client of -max above 128 takes one per 128), and takes
// every stream they open as soon as it arrives. A stream that starts with tunnelHello is a tunnel
// (see the protocol in tunnel.go), whichever client it comes from.
func runServer(ctx context.Context, cfg serverConfig, w io.Writer) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	cert, source, err := cfg.identity()
	if err != nil {
		return err
	}
	fp := fingerprint(cert.Certificate[0])
	opts := []quicpool.Option{
		quicpool.WithCapacity(1, cfg.Clients*quicpool.StreamsPerShard), // cfg.Clients shards: connections per address; twice as many in all
		quicpool.WithKeepAlive(cfg.KeepAlive),
	}
	if len(cfg.Allow) > 0 {
		opts = append(opts, quicpool.WithAllowedClients(cfg.Allow...))
	}
	opts = append(opts, poolLogger(cfg.Log, cfg.Debug)...)
	observe, err := cfg.observeConfig.options()
	if err != nil {
		return err
	}
	p, err := quicpool.NewServer(cfg.Listen, &tls.Config{Certificates: []tls.Certificate{cert}}, append(opts, observe...)...)
	if err != nil {
		return err // "listening on ADDR: ..."
	}
	s := &server{cfg: cfg, pool: p, tunnels: newTracker(), noTarget: newThrottle()}
	events, unwatch := watch(p)
	defer unwatch()

	stopMetrics, err := cfg.serveMetrics("server", p, w) // first: a server that cannot serve them never says it listens
	if err != nil {
		p.Close()
		return err
	}
	defer stopMetrics() // after the drain: the metrics show it
	fmt.Fprintf(w, "quicpool server: listening on %s, forwarding to %s, fingerprint %s\n", p.Addr(), cfg.Target, fp)
	fmt.Fprintf(w, "quicpool server: %s\n", source)
	fmt.Fprintf(w, "quicpool server: on the client machine run:\n  quicpool client -server %s -fingerprint %s\n",
		clientAddr(p.Addr()), fp)

	var wg sync.WaitGroup
	wg.Go(func() { s.monitor(ctx, events) })
	wg.Go(func() { s.accept(&wg) })
	<-ctx.Done()
	shutdown(cfg.Log, s.tunnels, cfg.Grace, p, &wg)
	return nil
}

// clientAddr is the address a client on another machine dials to reach a server listening on
// addr: this host's name in place of an unspecified IP.
func clientAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "THIS-HOST"
		if name, err := os.Hostname(); err == nil && name != "" {
			host = name
		}
	}
	return net.JoinHostPort(host, port)
}

// accept takes every stream the clients open as soon as it arrives, each served by a goroutine
// of wg, until the pool closes. While the server drains, the tunnels they start are refused at
// once.
func (s *server) accept(wg *sync.WaitGroup) {
	for {
		st, err := s.pool.Accept(context.Background())
		if errors.Is(err, quicpool.ErrClosed) {
			return
		}
		if err != nil {
			s.cfg.Log.Error("cannot take streams", "reason", reason(err))
			time.Sleep(time.Second) // do not spin on an error that persists
			continue
		}
		wg.Go(func() { s.serveStream(st) })
	}
}

// serveStream waits for a stream's first bytes and serves it as a tunnel: dials the target,
// answers the status byte and pipes the two until both have closed. A stream that ends before
// it starts (the client pool discarded it, its connection died, the server stopped) ends
// quietly.
func (s *server) serveStream(st *quicpool.StreamConn) {
	log := s.cfg.Log.With("client", st.RemoteAddr().String())
	hello := make([]byte, len(tunnelHello))
	s.tunnels.waitingFor(1)
	_, err := io.ReadFull(st, hello)
	s.tunnels.waitingFor(-1)
	if err != nil {
		abort(nil, st)
		return
	}
	if string(hello) != tunnelHello {
		abort(nil, st)
		log.Warn("refused a stream that is not a tunnel: is the client a quicpool client of this version?", "first_bytes", fmt.Sprintf("%q", hello))
		return
	}
	if !s.tunnels.begin() {
		_, _ = st.Write([]byte{statusStopping})
		_ = st.Close()
		log.Info("refused a tunnel: shutting down")
		return
	}
	defer s.tunnels.end()
	start := time.Now()
	tc, err := net.DialTimeout("tcp", s.cfg.Target, dialTimeout)
	if err != nil {
		_, _ = st.Write([]byte{statusNoTarget})
		_ = st.Close()
		attrs := []any{"target", s.cfg.Target, "reason", err.Error()}
		level, skipped := s.noTarget.level("", slog.LevelWarn)
		if level == slog.LevelWarn {
			attrs = append(attrs, "also_failed", skipped)
		}
		log.Log(context.Background(), level, "cannot reach the target", attrs...)
		return
	}
	if _, err := st.Write([]byte{statusOK}); err != nil {
		abort(tc.(*net.TCPConn), st)
		return
	}
	log.Debug("tunnel opened", "stream", st.ID())
	down, up, err := pipe(tc.(*net.TCPConn), st, s.tunnels.carriedDown, s.tunnels.carriedUp, nil)
	log.Debug("tunnel closed", append([]any{"stream", st.ID()}, closed(up, down, start, err)...)...)
}

// monitor logs the clients coming and going, the refused ones, and with cfg.Stats a health line
// periodically, until ctx is done.
func (s *server) monitor(ctx context.Context, events <-chan messages.Event) {
	log := s.cfg.Log
	clients := map[int]string{} // address by connection slot
	var refusals thinned
	tick := ticker(s.cfg.Stats)
	defer tick.Stop()
	for {
		select {
		case ev := <-events:
			switch ev.Kind {
			case messages.EventShardUp:
				clients[ev.Slot] = ev.Addr
				log.Info("client connected", "client", ev.Addr, "clients", len(clients))
			case messages.EventShardFailed:
				addr, ok := clients[ev.Slot]
				delete(clients, ev.Slot)
				if ok {
					log.Info("client disconnected", "client", addr, "reason", reason(ev.Err), "clients", len(clients))
				}
			case messages.EventReplaced:
				log.Info("client reconnected: its silent connection is closed", "client", ev.Addr)
			case messages.EventRefused:
				if now, skipped := refusals.log(); now {
					log.Warn("refused a client", "client", ev.Addr, "reason", reason(ev.Err), "also_refused", skipped)
				}
			case messages.EventListenFailed:
				log.Error("cannot listen", "reason", reason(ev.Err))
			}
		case <-tick.C:
			st := s.pool.Stats()
			log.Info("health", append([]any{"clients", answering(st)}, health(s.tunnels.snapshot().waiting, st, s.tunnels)...)...)
		case <-ctx.Done():
			return
		}
	}
}

// ticker returns a ticker of period d, or one that never fires for d == 0.
func ticker(d time.Duration) *time.Ticker {
	if d <= 0 {
		t := time.NewTicker(time.Hour)
		t.Stop()
		return t
	}
	return time.NewTicker(d)
}
