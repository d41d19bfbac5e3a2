package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/quicpool/quicpool"
)

// serverConfig is what the server subcommand's flags set.
type serverConfig struct {
	Listen   string       // UDP address of the server pool; port 0 picks one
	Target   string       // TCP address every tunnel is forwarded to
	MaxCap   int          // the server pool's capacity
	CertFile string       // PEM certificate; with KeyFile, replaces the self-signed one
	KeyFile  string       // PEM private key of CertFile
	ClientIP string       // the only client address accepted; "" accepts any
	Log      *slog.Logger // warnings, and at -v tunnels and pool events; never nil
}

func (c serverConfig) validate() error {
	switch {
	case c.Listen == "":
		return errors.New("-listen is required")
	case c.Target == "":
		return errors.New("-target is required")
	case c.MaxCap < 1:
		return errors.New("-max must be at least 1")
	case (c.CertFile == "") != (c.KeyFile == ""):
		return errors.New("-cert and -key go together")
	}
	return nil
}

// serverTLS returns the server's TLS config and the SHA-256 fingerprint of its certificate:
// the -cert/-key pair, or a fresh self-signed certificate.
func (c serverConfig) serverTLS() (*tls.Config, string, error) {
	if c.CertFile == "" {
		conf, der, err := selfSigned()
		if err != nil {
			return nil, "", fmt.Errorf("generating certificate: %w", err)
		}
		return conf, fingerprint(der), nil
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, "", err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}, fingerprint(cert.Certificate[0]), nil
}

// errControlLost ends one server pool: its control stream ended, so the client that held it is
// gone (or its connection died).
var errControlLost = errors.New("control stream lost")

// runServer runs the server side of the tunnel until ctx is done, then returns nil once every
// tunnel has closed. It writes one startup line to w: the pool's address, the target and the
// certificate's fingerprint. The error is for a server that could not start.
//
// A server pool issues the control stream once, so one pool serves one client. When the control
// stream ends (the client stopped, or its connection died), runServer closes the pool, ending
// its tunnels, and listens again on the same address with a new pool for the next client.
func runServer(ctx context.Context, cfg serverConfig, w io.Writer) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	tlsConf, fp, err := cfg.serverTLS()
	if err != nil {
		return err
	}
	listen := cfg.Listen
	for first := true; ; first = false {
		p := quicpool.NewServerPool(cfg.MaxCap, cfg.ClientIP, tlsConf, listen, keepAlive, quicpool.WithLogger(cfg.Log))
		go p.ServerManager()
		if err := p.WaitReady(ctx, 0); err != nil {
			p.Close()
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("server pool: %w", err)
		}
		listen = samePort(cfg.Listen, p.Addr())
		if first {
			fmt.Fprintf(w, "quicpool server: listening on %s, forwarding to %s, fingerprint %s\n", listen, cfg.Target, fp)
		}
		err := serveClient(ctx, p, cfg)
		if ctx.Err() != nil {
			return nil
		}
		cfg.Log.Warn("client gone; waiting for a new one", "err", err)
	}
}

// samePort returns the address for the next pool of a server that was asked to listen on asked:
// asked itself, with the port of actual (where the first pool listens) if asked has port 0.
func samePort(asked, actual string) string {
	host, port, err := net.SplitHostPort(asked)
	if err != nil || port != "0" {
		return asked
	}
	if _, port, err = net.SplitHostPort(actual); err != nil {
		return asked
	}
	return net.JoinHostPort(host, port)
}

// serveClient takes p's control stream, starts a tunnel for every ID read from it, and returns
// when the control stream ends or ctx is done. It closes p and returns once every tunnel has
// closed.
func serveClient(ctx context.Context, p *quicpool.Pool, cfg serverConfig) error {
	var tunnels sync.WaitGroup
	defer tunnels.Wait()
	defer p.Close() // ends the tunnels' streams
	stop := context.AfterFunc(ctx, p.Close)
	defer stop()

	var ctl net.Conn
	for ctl == nil {
		var err error
		ctl, err = p.OutgoingGet(quicpool.ControlID, time.Hour) // until a client connects
		if err != nil && !errors.Is(err, quicpool.ErrTimeout) {
			return err
		}
	}
	defer ctl.Close()
	cfg.Log.Info("control stream open", "remote", ctl.RemoteAddr().String())

	lines := bufio.NewScanner(ctl)
	for lines.Scan() {
		id := lines.Text()
		tunnels.Go(func() { serveTunnel(ctx, p, id, cfg) })
	}
	return fmt.Errorf("%w: %w", errControlLost, orEOF(lines.Err()))
}

// serveTunnel takes the stream with the given ID, dials the target and pipes the two until both
// have closed.
func serveTunnel(ctx context.Context, p *quicpool.Pool, id string, cfg serverConfig) {
	log := cfg.Log.With("id", id)
	c, err := p.OutgoingGet(id, tunnelGetTimeout)
	if err != nil {
		log.Warn("tunnel: no stream", "err", err)
		return
	}
	stream := c.(*quicpool.StreamConn)
	d := net.Dialer{Timeout: dialTimeout}
	tc, err := d.DialContext(ctx, "tcp", cfg.Target)
	if err != nil {
		abort(nil, stream) // the client resets its TCP connection
		log.Warn("tunnel: cannot reach target", "err", err)
		return
	}
	log.Info("tunnel open", "target", cfg.Target)
	up, down, err := pipe(tc.(*net.TCPConn), stream)
	log.Info("tunnel closed", "from client", down, "to client", up, "err", err)
}
