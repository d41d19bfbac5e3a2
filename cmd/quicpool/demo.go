package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/quicpool/quicpool"
	"github.com/quicpool/quicpool/messages"
)

// Timeouts of one round trip and of the start-up.
const (
	getTimeout   = 5 * time.Second  // IncomingGet and OutgoingGet
	ioTimeout    = 5 * time.Second  // the deadline of the request and its echo
	readyTimeout = 10 * time.Second // the wait for both pools to be ready
)

// demoConfig is what the demo subcommand's flags set.
type demoConfig struct {
	Workers  int           // goroutines doing round trips
	Duration time.Duration // how long they run
	MinCap   int           // the client pool's minimum capacity
	MaxCap   int           // the client's maximum capacity and the server's capacity
	Size     int           // payload bytes of each request
	Live     bool          // redraw one status line with "\r" (stdout is a terminal)
	Logger   *slog.Logger  // the pools' events; nil logs nothing
}

func (c demoConfig) validate() error {
	switch {
	case c.Workers < 1:
		return errors.New("-workers must be at least 1")
	case c.Duration <= 0:
		return errors.New("-duration must be positive")
	case c.MinCap < 1:
		return errors.New("-min must be at least 1")
	case c.MaxCap < c.MinCap:
		return errors.New("-max must be at least -min")
	case c.Size < 1:
		return errors.New("-size must be at least 1")
	}
	return nil
}

// summary is the outcome of a demo run.
type summary struct {
	Ops      int64         // round trips that succeeded
	Errors   int64         // round trips that failed
	FirstErr error         // the first failure, if any
	Elapsed  time.Duration // from the first round trip to the end of the last
	P50, P99 time.Duration // latency of the successful round trips
	// Server and Client are the pools' state just before they were closed.
	Server, Client messages.Stats
}

// OpsPerSec is the rate of successful round trips.
func (s summary) OpsPerSec() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Ops) / s.Elapsed.Seconds()
}

// demo is one run: the two pools the workers share.
type demo struct {
	cfg     demoConfig
	server  *quicpool.Pool
	client  *quicpool.Pool
	certDER []byte // the server's certificate, checked on every stream (TLS code "1")
}

// runDemo starts a server pool and a client pool on the loopback interface, runs cfg.Workers
// goroutines doing echo round trips through them for cfg.Duration (or until ctx is done), writes
// a status line every second and a final summary to w, closes both pools and returns the summary.
// The error is for a demo that could not start; failed round trips are counted in the summary.
func runDemo(ctx context.Context, cfg demoConfig, w io.Writer) (summary, error) {
	if err := cfg.validate(); err != nil {
		return summary{}, err
	}
	tlsConf, der, err := selfSigned()
	if err != nil {
		return summary{}, fmt.Errorf("generating certificate: %w", err)
	}
	var opts []quicpool.Option
	if cfg.Logger != nil {
		opts = append(opts, quicpool.WithLogger(cfg.Logger))
	}

	d := &demo{cfg: cfg, certDER: der}
	d.server = quicpool.NewServerPool(cfg.MaxCap, "", tlsConf, "127.0.0.1:0", 10*time.Second, opts...)
	go d.server.ServerManager()
	defer d.server.Close()

	readyCtx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if err := d.server.WaitReady(readyCtx, 0); err != nil {
		return summary{}, fmt.Errorf("server pool: %w", err)
	}
	addr := d.server.Addr()

	d.client = quicpool.NewClientPool(cfg.MinCap, cfg.MaxCap, 100*time.Millisecond, time.Second, 10*time.Second,
		"1", "localhost", quicpool.StaticAddr(addr), opts...)
	go d.client.ClientManager()
	defer d.client.Close()

	// The first stream a server issues, ControlID, is a tunnel's control channel: IncomingGet
	// never hands it out, so left in the pools it would hold one slot of their capacity for
	// good. Take it on both sides, as a real tunnel does. The demo has no use for it.
	clientCtl, err := d.client.OutgoingGet(quicpool.ControlID, readyTimeout)
	if err != nil {
		return summary{}, fmt.Errorf("client pool: %w", err)
	}
	defer clientCtl.Close()
	serverCtl, err := d.server.OutgoingGet(quicpool.ControlID, readyTimeout)
	if err != nil {
		return summary{}, fmt.Errorf("server pool: %w", err)
	}
	defer serverCtl.Close()

	// Both ends of MinCap streams are idle before the clock starts.
	if err := d.client.WaitReady(readyCtx, cfg.MinCap); err != nil {
		return summary{}, fmt.Errorf("client pool: %w", err)
	}
	if err := d.server.WaitReady(readyCtx, cfg.MinCap); err != nil {
		return summary{}, fmt.Errorf("server pool: %w", err)
	}
	fmt.Fprintf(w, "server on %s, client %d..%d streams, %d workers, %d-byte requests, %s\n",
		addr, cfg.MinCap, cfg.MaxCap, cfg.Workers, cfg.Size, cfg.Duration)

	res := d.run(ctx, w)

	sum := summary{Ops: res.ops, Errors: res.errs, FirstErr: res.firstErr}
	sum.Elapsed = res.elapsed
	sum.P50 = percentile(res.sorted, 0.50)
	sum.P99 = percentile(res.sorted, 0.99)
	sum.Server, _ = snapshot(d.server)
	sum.Client, _ = snapshot(d.client)
	_ = clientCtl.Close()
	_ = serverCtl.Close()
	d.client.Close()
	d.server.Close()
	printSummary(w, sum)
	return sum, nil
}

// runResult is what the workers measured.
type runResult struct {
	elapsed   time.Duration
	ops, errs int64
	firstErr  error
	sorted    []time.Duration // latencies of the successful round trips, ascending
}

// outcome is one round trip: its latency, or why it failed.
type outcome struct {
	latency time.Duration
	err     error
}

// run runs the workers until cfg.Duration has passed or ctx is done. One goroutine, tally, owns
// the counters: the workers send it each outcome, and it draws the status line.
func (d *demo) run(ctx context.Context, w io.Writer) runResult {
	runCtx, cancel := context.WithTimeout(ctx, d.cfg.Duration)
	defer cancel()

	outcomes := make(chan outcome, 1024)
	tallied := make(chan runResult, 1)
	go func() { tallied <- d.tally(w, outcomes) }()

	start := time.Now()
	var wg sync.WaitGroup
	for range d.cfg.Workers {
		wg.Go(func() { d.worker(runCtx, outcomes) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(outcomes)
	res := <-tallied
	res.elapsed = elapsed
	return res
}

// worker does round trips until ctx is done and reports each outcome.
func (d *demo) worker(ctx context.Context, outcomes chan<- outcome) {
	req := make([]byte, d.cfg.Size)
	resp := make([]byte, d.cfg.Size)
	for ctx.Err() == nil {
		_, _ = rand.Read(req) // a fresh payload, so that a stray reply cannot pass for this one
		t0 := time.Now()
		err := d.roundTrip(req, resp)
		outcomes <- outcome{latency: time.Since(t0), err: err}
	}
}

// roundTrip is one tunnel: the server takes any idle stream, the client takes the same stream by
// its ID (in a real tunnel the ID would travel over the control stream), the client sends req,
// the server echoes it, the client reads the echo into resp and checks it. Both ends are closed.
func (d *demo) roundTrip(req, resp []byte) error {
	id, sc, err := d.server.IncomingGet(getTimeout)
	if err != nil {
		return err
	}
	defer sc.Close()
	cc, err := d.client.OutgoingGet(id, getTimeout)
	if err != nil {
		return err
	}
	defer cc.Close()
	if err := d.checkPeer(cc); err != nil {
		return err
	}

	deadline := time.Now().Add(ioTimeout)
	_ = sc.SetDeadline(deadline)
	_ = cc.SetDeadline(deadline)
	// Echo and write run beside the read, so that a request larger than the flow-control
	// window cannot deadlock. The deadline bounds all three.
	echoed, written := make(chan error, 1), make(chan error, 1)
	go func() {
		_, err := io.CopyN(sc, sc, int64(len(req)))
		echoed <- err
	}()
	go func() {
		_, err := cc.Write(req)
		written <- err
	}()
	_, readErr := io.ReadFull(cc, resp)
	writeErr, echoErr := <-written, <-echoed
	switch {
	case writeErr != nil:
		return fmt.Errorf("stream %s: client write: %w", id, writeErr)
	case echoErr != nil:
		return fmt.Errorf("stream %s: server echo: %w", id, echoErr)
	case readErr != nil:
		return fmt.Errorf("stream %s: client read: %w", id, readErr)
	case !bytes.Equal(req, resp):
		return fmt.Errorf("stream %s: echo differs from request", id)
	}
	return nil
}

// checkPeer is what TLS code "1" asks of the client: the pool does not verify the server's
// self-signed certificate, so compare it with the one we expect.
func (d *demo) checkPeer(c net.Conn) error {
	sc, ok := c.(*quicpool.StreamConn)
	if !ok {
		return fmt.Errorf("unexpected connection type %T", c)
	}
	certs := sc.ConnectionState().PeerCertificates
	if len(certs) == 0 || !bytes.Equal(certs[0].Raw, d.certDER) {
		return errors.New("server certificate does not match")
	}
	return nil
}

// tally counts the outcomes until the channel is closed, and writes a status line every second:
// one line redrawn in place when cfg.Live is set, one line per second otherwise.
func (d *demo) tally(w io.Writer, outcomes <-chan outcome) runResult {
	var res runResult
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	start, last, lastOps := time.Now(), time.Now(), int64(0)
	drawn := false // a live line is on screen and needs its newline
	for {
		select {
		case o, ok := <-outcomes:
			switch {
			case !ok:
				if drawn {
					fmt.Fprintln(w)
				}
				slices.Sort(res.sorted)
				return res
			case o.err != nil:
				res.errs++
				if res.firstErr == nil {
					res.firstErr = o.err
				}
			default:
				res.ops++
				res.sorted = append(res.sorted, o.latency)
			}
		case now := <-ticker.C:
			rate := float64(res.ops-lastOps) / now.Sub(last).Seconds()
			last, lastOps = now, res.ops
			line := fmt.Sprintf("%4.0fs  idle server %d client %d  capacity %d  interval %v  shards %d  %.0f ops/s  %d errors",
				now.Sub(start).Seconds(), d.server.Active(), d.client.Active(), d.client.Capacity(),
				d.client.Interval(), d.client.ShardCount(), rate, res.errs)
			if d.cfg.Live {
				fmt.Fprintf(w, "\r%s\033[K", line)
				drawn = true
			} else {
				fmt.Fprintln(w, line)
			}
		}
	}
}

// snapshot asks a pool's coordinator for its state. ok is false if no answer came within a
// second (the pool is closed).
func snapshot(p *quicpool.Pool) (s messages.Stats, ok bool) {
	reply := make(chan messages.Stats, 1) // the coordinator needs a one-slot reply channel
	p.Engine().Send(p.Coordinator(), messages.State{Reply: reply})
	select {
	case s = <-reply:
		return s, true
	case <-time.After(time.Second):
		return s, false
	}
}

// percentile returns the q-quantile (0 < q <= 1) of sorted by the nearest-rank method, or 0 for
// an empty slice.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// printSummary writes the final report of a run.
func printSummary(w io.Writer, s summary) {
	fmt.Fprintf(w, "ops       %d in %s (%.0f ops/s)\n", s.Ops, s.Elapsed.Round(time.Millisecond), s.OpsPerSec())
	fmt.Fprintf(w, "latency   p50 %s  p99 %s\n", s.P50.Round(time.Microsecond), s.P99.Round(time.Microsecond))
	fmt.Fprintf(w, "errors    %d\n", s.Errors)
	if s.FirstErr != nil {
		fmt.Fprintf(w, "first     %v\n", s.FirstErr)
	}
	for _, p := range []struct {
		name string
		s    messages.Stats
	}{{"server", s.Server}, {"client", s.Client}} {
		fmt.Fprintf(w, "%-9s streams opened %d  handed out %d  discarded %d  failed %d  idle at end %d\n",
			p.name, p.s.Opened, p.s.HandedOut, p.s.Discarded, p.s.Failed, p.s.Idle)
	}
}
