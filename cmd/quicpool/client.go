package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/quicpool/quicpool"
)

// clientConfig is what the client subcommand's flags set.
type clientConfig struct {
	Server      string       // the server pool's UDP address, host:port
	Listen      string       // TCP address to accept connections on; port 0 picks one
	MinCap      int          // the client pool's minimum idle streams
	MaxCap      int          // the client pool's maximum idle streams
	TLS         string       // the pool's TLS code: "0", "1" or "2"
	Fingerprint string       // SHA-256 of the server's certificate, hex; "" checks nothing
	Log         *slog.Logger // warnings, and at -v tunnels and pool events; never nil
}

func (c clientConfig) validate() error {
	switch {
	case c.Server == "":
		return errors.New("-server is required")
	case c.Listen == "":
		return errors.New("-listen is required")
	case c.MinCap < 1:
		return errors.New("-min must be at least 1")
	case c.MaxCap < c.MinCap:
		return errors.New("-max must be at least -min")
	case c.TLS != "0" && c.TLS != "1" && c.TLS != "2":
		return fmt.Errorf("-tls %q: want 0, 1 or 2", c.TLS)
	}
	if _, _, err := net.SplitHostPort(c.Server); err != nil {
		return fmt.Errorf("-server: %w", err)
	}
	_, err := parseFingerprint(c.Fingerprint)
	return err
}

// client is one run of the client side.
type client struct {
	cfg  clientConfig
	fp   string // the normalised -fingerprint
	pool *quicpool.Pool
	ids  chan string // IDs of new tunnels, for the goroutine that owns the control stream
}

// runClient runs the client side of the tunnel until ctx is done, then returns nil once every
// tunnel has closed. It writes one startup line to w: the address it accepts on, the server and
// the server's fingerprint. It fails if it cannot start (no server within 10s, a certificate
// that does not match -fingerprint) or when the control stream ends: the server stopped, and a
// new server pool issues its control stream to a new client, so start the client again.
func runClient(ctx context.Context, cfg clientConfig, w io.Writer) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	c := &client{cfg: cfg, ids: make(chan string)}
	c.fp, _ = parseFingerprint(cfg.Fingerprint)
	host, _, _ := net.SplitHostPort(cfg.Server)

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	defer ln.Close()

	c.pool = quicpool.NewClientPool(cfg.MinCap, cfg.MaxCap, 100*time.Millisecond, time.Second, keepAlive,
		cfg.TLS, host, quicpool.StaticAddr(cfg.Server), quicpool.WithLogger(cfg.Log))
	go c.pool.ClientManager()
	var tunnels sync.WaitGroup
	defer tunnels.Wait()
	defer c.pool.Close() // ends the tunnels' streams
	stop := context.AfterFunc(ctx, c.pool.Close)
	defer stop()

	ctl, err := c.pool.OutgoingGet(quicpool.ControlID, controlTimeout)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("no control stream from %s: %w", cfg.Server, err)
	}
	// ctl is never closed on its own: closing the pool closes its connection, and closing the
	// stream while writeControl may be writing is not allowed.
	if err := checkPeer(ctl, c.fp); err != nil {
		return err
	}
	fp, _ := peerFingerprint(ctl)
	pinned := "not checked: pass -fingerprint"
	if c.fp != "" {
		pinned = "verified"
	}
	fmt.Fprintf(w, "quicpool client: forwarding %s to %s, server fingerprint %s (%s)\n",
		ln.Addr(), cfg.Server, fp, pinned)

	// The run ends when ctx is done or the control stream ends; either way runCtx is cancelled,
	// the listener and the pool close, and every goroutine below returns.
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	tunnels.Go(func() { cancel(c.writeControl(runCtx, ctl)) })
	tunnels.Go(func() { // the server never writes: a read returns when the control stream ends
		_, err := io.Copy(io.Discard, ctl)
		cancel(fmt.Errorf("control stream ended: %w", orEOF(err)))
	})
	tunnels.Go(func() {
		for {
			tc, err := ln.Accept()
			if err != nil {
				return
			}
			tunnels.Go(func() { c.tunnel(runCtx, tc.(*net.TCPConn)) })
		}
	})

	<-runCtx.Done()
	_ = ln.Close()
	if ctx.Err() != nil {
		return nil
	}
	return context.Cause(runCtx)
}

// writeControl owns the control stream's write side: it writes every ID received on c.ids as a
// line, until ctx is done or a write fails.
func (c *client) writeControl(ctx context.Context, ctl net.Conn) error {
	for {
		select {
		case id := <-c.ids:
			if _, err := io.WriteString(ctl, id+"\n"); err != nil {
				return fmt.Errorf("control stream: %w", err)
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// tunnel forwards one accepted TCP connection: it takes an idle stream, passes its ID to the
// server over the control stream and pipes the two until both have closed.
func (c *client) tunnel(ctx context.Context, tc *net.TCPConn) {
	log := c.cfg.Log.With("from", tc.RemoteAddr().String())
	id, s, err := c.pool.IncomingGet(tunnelGetTimeout)
	if err != nil {
		abort(tc, nil)
		log.Warn("tunnel: no stream", "err", err)
		return
	}
	stream := s.(*quicpool.StreamConn)
	log = log.With("id", id)
	if err := checkPeer(stream, c.fp); err != nil { // another connection, maybe another server
		abort(tc, stream)
		log.Warn("tunnel refused", "err", err)
		return
	}
	select {
	case c.ids <- id:
	case <-ctx.Done():
		abort(tc, stream)
		return
	}
	log.Info("tunnel open")
	up, down, err := pipe(tc, stream)
	log.Info("tunnel closed", "to server", up, "from server", down, "err", err)
}

// orEOF returns err, or io.EOF for a nil err (io.Copy reports a clean end as nil).
func orEOF(err error) error {
	if err == nil {
		return io.EOF
	}
	return err
}
