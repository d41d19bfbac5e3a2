package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ---------------------------------------------------------------------------------------------
// 8. Wide-area path
//
// The client pool reaches the server pool through the UDP relay (relay.go) with an emulated
// path: a fixed one-way delay and a random loss per datagram (netpath.go). What a pool saves over
// a fresh connection shows only when a round trip costs something: here a round trip is
// 2 x delay (50ms by default) instead of tens of microseconds.
//
// One op is a new connection as the application sees it: from "the server side wants a stream
// to the client" (IncomingGet; raw quic-go opens a fresh stream; TCP dials a new connection) to
// the echo's reply back: the server side writes 1 KiB and half-closes, the client side reads it
// to EOF, writes 1 KiB back and half-closes, the server side reads that to EOF. The server side
// writes as soon as it has its stream, as a tunnel does; the client's OutgoingGet(id) is called
// in this process right after: the ID would cross the control channel while the 1 KiB crosses
// the stream.

var (
	wanDelayFlag  = flag.Duration("wan-delay", 25*time.Millisecond, "wan workload: one-way delay of the emulated path")
	wanLossFlag   = flag.String("wan-loss", "0%,1%", "wan workload: datagram loss of the emulated path (each direction), comma separated")
	wanConcFlag   = flag.String("wan-concurrency", "16,64", "wan workload: concurrent ops of the sustained runs, comma separated")
	wanBurstFlag  = flag.Int("wan-burst", 64, "wan workload: ops started at once in the cold, warm and after-idle bursts")
	wanShapeFlag  = flag.String("wan-shape", "8/64", "wan workload: pool shape minCap/maxCap (8: the default minimum capacity)")
	wanIdleFlag   = flag.Duration("wan-idle", 25*time.Second, "wan workload: idle time before the after-idle burst")
	wanWindowFlag = flag.Duration("wan-window", 3*time.Second, "wan workload: measured time of each sustained run")
	wanWarmFlag   = flag.Duration("wan-warmup", 5*time.Second, "wan workload: unmeasured load (as wide as the burst) after the cold burst, to warm the pools")
)

// WanConfig is what the wan workload measures, from its flags.
type WanConfig struct {
	Delay       time.Duration // one way
	Losses      []float64     // 0..1
	Concurrency []int
	Burst       int
	Shape       Shape
	Idle        time.Duration
	Window      time.Duration
	Warmup      time.Duration
	Quick       bool
}

// RTT is the path's round-trip time.
func (w WanConfig) RTT() time.Duration { return 2 * w.Delay }

// wanConfig reads the wan workload's flags; quick shortens those not set on the command line.
func wanConfig(quick bool, set map[string]bool) (WanConfig, error) {
	if quick {
		for name, v := range map[string]string{"wan-loss": "0%", "wan-concurrency": "16", "wan-idle": "3s",
			"wan-window": "1s", "wan-warmup": "2s"} {
			if !set[name] {
				_ = flag.Set(name, v)
			}
		}
	}
	w := WanConfig{Delay: *wanDelayFlag, Burst: *wanBurstFlag, Idle: *wanIdleFlag, Window: *wanWindowFlag,
		Warmup: *wanWarmFlag, Quick: quick}
	var err error
	if w.Losses, err = parsePercents(*wanLossFlag); err != nil {
		return w, fmt.Errorf("-wan-loss: %w", err)
	}
	if w.Concurrency, err = parseInts(*wanConcFlag); err != nil {
		return w, fmt.Errorf("-wan-concurrency: %w", err)
	}
	shapes, err := parseShapes(*wanShapeFlag)
	if err != nil {
		return w, fmt.Errorf("-wan-shape: %w", err)
	}
	w.Shape = shapes[0]
	if w.Delay <= 0 || w.Burst <= 0 || w.Window <= 0 {
		return w, errors.New("-wan-delay, -wan-burst and -wan-window must be positive")
	}
	return w, nil
}

// parsePercents parses "0%,1%" (or "0,0.01") into fractions.
func parsePercents(s string) ([]float64, error) {
	var ps []float64
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		pct := strings.HasSuffix(f, "%")
		v, err := strconv.ParseFloat(strings.TrimSuffix(f, "%"), 64)
		if pct {
			v /= 100
		}
		if err != nil || v < 0 || v >= 1 {
			return nil, fmt.Errorf("%q is not a loss rate", f)
		}
		ps = append(ps, v)
	}
	return ps, nil
}

// nameTCP is the TCP baseline's name in the wan tables.
const nameTCP = "TCP (new connection per op)"

// WanBurst is one burst: Ops ops started at once, each timed from the burst's start.
type WanBurst struct {
	Ops            int
	P50, P99, Last time.Duration // Last: until every op was served
	Errors         int
	Idle, Capacity int // the client pool's idle streams and capacity just before (pools)
}

// WanLoad is one sustained run: Workers ops at a time, back to back.
type WanLoad struct {
	Workers   int
	Ops       int
	OpsPerSec float64
	P50, P99  time.Duration
	Errors    int
}

// WanResult is one implementation on one path.
type WanResult struct {
	Impl                  string
	Loss                  float64
	Cold, Warm, AfterIdle WanBurst
	Loads                 []WanLoad
	Idled                 time.Duration // how long it sat idle before the after-idle burst
	Err                   string
}

// wanSubject is one implementation under test on one path: its op, and what it needs to close.
type wanSubject struct {
	r        *WanResult
	op       func(timeout time.Duration) error
	pool     Pool // the client pool, for its idle streams and capacity (nil: none)
	close    func()
	idleFrom time.Time
}

// runWanWorkload runs the wan workload: for each loss rate, each implementation and TCP (TCP
// only on the lossless path), one after the other.
func runWanWorkload(cfg Config) []WanResult {
	w := cfg.Wan
	var out []WanResult
	for _, loss := range w.Losses {
		var starts []func() *wanSubject
		for _, impl := range cfg.Impls {
			starts = append(starts, func() *wanSubject { return startWanPool(impl, w, loss) })
		}
		if loss == 0 {
			starts = append(starts, func() *wanSubject { return startWanTCP(w) })
		}
		// Each in turn: cold and warm, then idle, then the after-idle burst.
		for _, start := range starts {
			s := start()
			if s.r.Err == "" {
				wanActive(s, w)
				time.Sleep(time.Until(s.idleFrom.Add(w.Idle)))
				s.r.Idled = time.Since(s.idleFrom)
				s.r.AfterIdle = wanBurst(s, w.Burst)
				logf("wan %s loss %.1f%%: after %s idle burst p50 %s p99 %s (%.2f RTT), %d errors (idle %d, capacity %d before)",
					s.r.Impl, 100*loss, dur(s.r.Idled), dur(s.r.AfterIdle.P50), dur(s.r.AfterIdle.P99), rtts(s.r.AfterIdle.P50, w),
					s.r.AfterIdle.Errors, s.r.AfterIdle.Idle, s.r.AfterIdle.Capacity)
			}
			if s.close != nil {
				s.close()
			}
			out = append(out, *s.r)
			settle()
		}
		settle()
	}
	return out
}

// startWanPool starts a pair of impl whose client reaches the server through a relay on the
// emulated path, and waits until the pools hold minCap idle streams (raw quic-go: until its
// client has connected). That is the cold pool.
func startWanPool(impl Impl, w WanConfig, loss float64) *wanSubject {
	s := &wanSubject{r: &WanResult{Impl: impl.Name, Loss: loss}}
	addr, err := freeAddr()
	if err != nil {
		s.r.Err = err.Error()
		return s
	}
	rl, err := newPathRelay(addr, w.Delay, loss)
	if err != nil {
		s.r.Err = err.Error()
		return s
	}
	pair, err := startPairOn(impl, w.Shape, setupWait, addr, rl.Addr())
	if err != nil {
		rl.Close()
		s.r.Err = err.Error()
		return s
	}
	s.close = func() { pair.Close(); rl.Close() }
	if srv, ok := pair.Server.(*rawServer); ok {
		deadline := time.Now().Add(setupWait)
		for c, _ := srv.liveConn(); c == nil; c, _ = srv.liveConn() {
			if time.Now().After(deadline) {
				s.close()
				s.close, s.r.Err = nil, "the raw client did not connect"
				return s
			}
			time.Sleep(time.Millisecond)
		}
	}
	s.op = func(timeout time.Duration) error { return wanOp(pair.Server, pair.Client, timeout) }
	if impl.Pooled {
		s.pool = pair.Client
	}
	return s
}

// startWanTCP starts a TCP echo server and a TCP relay with the path's delay in front of it.
func startWanTCP(w WanConfig) *wanSubject {
	s := &wanSubject{r: &WanResult{Impl: nameTCP}}
	srv, err := newTCPEcho()
	if err != nil {
		s.r.Err = err.Error()
		return s
	}
	rl, err := newTCPRelay(srv.Addr().String(), w.Delay)
	if err != nil {
		_ = srv.Close()
		s.r.Err = err.Error()
		return s
	}
	s.close = func() { rl.Close(); _ = srv.Close() }
	s.op = func(timeout time.Duration) error { return tcpOp(rl.Addr(), timeout) }
	return s
}

// wanActive measures one subject cold and warm: the cold burst at once, then an unmeasured
// warm-up load, the sustained runs, and the warm burst on the pool filled again. It notes when
// the subject went idle (filled again after the warm burst).
func wanActive(s *wanSubject, w WanConfig) {
	name := fmt.Sprintf("wan %s loss %.1f%%", s.r.Impl, 100*s.r.Loss)
	s.r.Cold = wanBurst(s, w.Burst)
	logf("%s: cold burst p50 %s p99 %s (%.2f RTT), all served %s, %d errors (idle %d, capacity %d before)", name,
		dur(s.r.Cold.P50), dur(s.r.Cold.P99), rtts(s.r.Cold.P50, w), dur(s.r.Cold.Last), s.r.Cold.Errors, s.r.Cold.Idle, s.r.Cold.Capacity)
	if s.pool != nil && w.Warmup > 0 {
		wanLoad(s.op, w.warmupWorkers(), 0, w.Warmup)
	}
	for _, c := range w.Concurrency {
		wanFilled(s, 2*time.Second)
		l := wanLoad(s.op, c, min(w.Window/2, 500*time.Millisecond), w.Window)
		logf("%s: %d concurrent: %.0f ops/s p50 %s (%.2f RTT) p99 %s, %d errors", name, c, l.OpsPerSec, dur(l.P50),
			rtts(l.P50, w), dur(l.P99), l.Errors)
		s.r.Loads = append(s.r.Loads, l)
	}
	wanFilled(s, 5*time.Second)
	s.r.Warm = wanBurst(s, w.Burst)
	logf("%s: warm burst p50 %s p99 %s (%.2f RTT), %d errors (idle %d, capacity %d before)", name,
		dur(s.r.Warm.P50), dur(s.r.Warm.P99), rtts(s.r.Warm.P50, w), s.r.Warm.Errors, s.r.Warm.Idle, s.r.Warm.Capacity)
	wanFilled(s, 5*time.Second)
	s.idleFrom = time.Now()
}

// warmupWorkers is the concurrency of the warm-up load: the largest of the runs and the burst.
func (w WanConfig) warmupWorkers() int { return max(slices.Max(w.Concurrency), w.Burst) }

// wanFilled waits, at most wait, until the client pool holds its capacity idle.
func wanFilled(s *wanSubject, wait time.Duration) {
	if s.pool == nil {
		return
	}
	deadline := time.Now().Add(wait)
	for s.pool.Active() < s.pool.Capacity() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

// wanBurst starts n ops at once and times each from the burst's start.
func wanBurst(s *wanSubject, n int) WanBurst {
	b := WanBurst{Ops: n}
	if s.pool != nil {
		b.Idle, b.Capacity = s.pool.Active(), s.pool.Capacity()
	}
	lat := make([]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = boundedOp(s.op, opTimeout)
			lat[i] = time.Since(start)
		}()
	}
	wg.Wait()
	var ok []time.Duration
	for i := range n {
		if errs[i] != nil {
			b.Errors++
			continue
		}
		ok = append(ok, lat[i])
	}
	b.P50, b.P99 = percentile(ok, 0.5), percentile(ok, 0.99)
	if len(ok) > 0 {
		b.Last = slices.Max(ok)
	}
	return b
}

// wanLoad runs workers ops at a time, back to back, for warmup + window, and measures the ops
// that complete within the window.
func wanLoad(op func(time.Duration) error, workers int, warmup, window time.Duration) WanLoad {
	l := WanLoad{Workers: workers}
	from := time.Now().Add(warmup)
	to := from.Add(window)
	lats := make([][]time.Duration, workers)
	var errs atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(to) {
				start := time.Now()
				err := boundedOp(op, opTimeout)
				end := time.Now()
				if end.Before(from) || end.After(to) {
					continue
				}
				if err != nil {
					errs.Add(1)
					continue
				}
				lats[w] = append(lats[w], end.Sub(start))
			}
		}()
	}
	wg.Wait()
	var all []time.Duration
	for _, ls := range lats {
		all = append(all, ls...)
	}
	l.Ops, l.Errors = len(all), int(errs.Load())
	l.OpsPerSec = float64(l.Ops) / window.Seconds()
	l.P50, l.P99 = percentile(all, 0.5), percentile(all, 0.99)
	return l
}

// boundedOp runs op with timeout, and gives up on it (counted as failed, left running) if it has
// not returned a second after: a library that ignores its timeout cannot stop the run.
func boundedOp(op func(time.Duration) error, timeout time.Duration) error {
	return withTimeout(timeout+time.Second, func() error { return op(timeout) })
}

// wanOp is one new connection through a pool: the server side takes a stream (IncomingGet),
// writes 1 KiB and half-closes at once, as a tunnel does (its data does not wait for the client
// side); the client side takes the same stream (OutgoingGet of its ID), reads the 1 KiB to EOF,
// writes 1 KiB back and half-closes; the server side reads the reply to EOF. Both close. All
// within timeout.
func wanOp(server, client Pool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	id, sc, err := server.IncomingGet(timeout)
	if err != nil {
		return fmt.Errorf("IncomingGet: %w", err)
	}
	_ = sc.SetDeadline(deadline)
	if err := sendRequest(sc); err != nil {
		abort(sc)
		return err
	}
	cc, err := client.OutgoingGet(id, max(time.Until(deadline), time.Millisecond))
	if err != nil {
		abort(sc)
		return fmt.Errorf("OutgoingGet: %w", err)
	}
	_ = cc.SetDeadline(deadline)
	if err := echoReply(sc, cc); err != nil {
		abort(sc)
		abort(cc)
		return err
	}
	_ = sc.Close()
	_ = cc.Close()
	return nil
}

// sendRequest is the server side's request: 1 KiB, then half-close.
func sendRequest(sc net.Conn) error {
	if _, err := sc.Write(payload); err != nil {
		return fmt.Errorf("server write: %w", err)
	}
	if err := halfClose(sc); err != nil {
		return fmt.Errorf("server half-close: %w", err)
	}
	return nil
}

// echoReply is the rest of the exchange: the client side reads the request to EOF and replies
// with 1 KiB and a half-close; the server side reads the reply to EOF.
func echoReply(sc, cc net.Conn) error {
	var buf [2048]byte
	if got, err := readToEOF(cc, buf[:]); err != nil || got != int64(len(payload)) {
		return fmt.Errorf("client read %d bytes: %v", got, err)
	}
	if _, err := cc.Write(payload); err != nil {
		return fmt.Errorf("client write: %w", err)
	}
	if err := halfClose(cc); err != nil {
		return fmt.Errorf("client half-close: %w", err)
	}
	if got, err := readToEOF(sc, buf[:]); err != nil || got != int64(len(payload)) {
		return fmt.Errorf("server read %d bytes: %v", got, err)
	}
	return nil
}

// tcpOp is one new TCP connection through the relay: connect, write 1 KiB, half-close, read the
// echo to EOF, close. All within timeout.
func tcpOp(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(deadline)
	if _, err := c.Write(payload); err != nil {
		return err
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	var buf [2048]byte
	if got, err := readToEOF(c, buf[:]); err != nil || got != int64(len(payload)) {
		return fmt.Errorf("read %d bytes: %v", got, err)
	}
	return nil
}

// newTCPEcho starts a TCP server that reads each connection to EOF and writes back what it read.
func newTCPEcho() (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(opTimeout))
				buf := make([]byte, 2048)
				n := 0
				for {
					m, err := c.Read(buf[n:])
					n += m
					if err != nil || n == len(buf) {
						if errors.Is(err, net.ErrClosed) {
							return
						}
						break
					}
				}
				_, _ = c.Write(buf[:n])
			}()
		}
	}()
	return ln, nil
}

// rtts is d in round trips of the path.
func rtts(d time.Duration, w WanConfig) float64 { return float64(d) / float64(w.RTT()) }

// ---------------------------------------------------------------------------------------------
// Report

func findWan(rs []WanResult, impl string, loss float64) *WanResult {
	return first(rs, func(r *WanResult) bool { return r.Impl == impl && r.Loss == loss && r.Err == "" })
}

// load returns the sustained run at the given concurrency.
func (r *WanResult) load(workers int) *WanLoad {
	for i := range r.Loads {
		if r.Loads[i].Workers == workers {
			return &r.Loads[i]
		}
	}
	return nil
}

func wanTable(cfg Config, rs []WanResult) string {
	if len(rs) == 0 {
		return ""
	}
	w := cfg.Wan
	var b strings.Builder
	idle := dur(w.Idle)
	if w.Quick {
		idle += " (-quick: the full run waits 25s)"
	}
	fmt.Fprintf(&b, "## 8. Wide-area path\n\nThe client reaches the server through a UDP relay in this process that delays every "+
		"datagram by %s each way (RTT %s) and drops each with the given probability, each direction. One op is a new "+
		"connection as the application sees it, timed from the moment it wants a stream to the other side until the "+
		"echo's reply is back: the server side takes a stream (`IncomingGet`; raw quic-go opens a fresh stream on the "+
		"client's connection, the client accepts it), writes 1 KiB and half-closes; the client side (`OutgoingGet(id)`, "+
		"called as soon as the ID exists: a real tunnel sends it on the control channel while the data crosses) reads it "+
		"to EOF, writes 1 KiB back and half-closes; the server side reads the reply to EOF. *TCP*: a new TCP connection "+
		"per op through a TCP relay with the same one-way delay, holding the client's first bytes for the handshake's "+
		"round trip; the same 1 KiB echo (no TLS; lossless path only: a byte-stream relay cannot drop segments). Pools "+
		"shaped %s. *Cold*: a fresh pair, as soon as both pools hold minCap idle streams (raw quic-go: once connected), "+
		"%d ops at once, each timed from the burst's start. Then %s of unmeasured load, %d ops at a time, for the pools "+
		"to grow (a quicpool client raises its capacity by one per refill tick while it is busy). *Sustained* (warm): "+
		"ops back to back at the given concurrency for %s after %s unmeasured. *Warm*: then, the client pool back at its "+
		"capacity, %d ops at once. *After idle*: then %d ops at once after %s without ops. p50 also in RTTs; *idle/cap*: the client pool's idle streams and capacity just before the "+
		"burst. Every op is bounded by %s.\n\n",
		dur(w.Delay), dur(w.RTT()), w.Shape, w.Burst, dur(w.Warmup), w.warmupWorkers(), dur(w.Window),
		dur(min(w.Window/2, 500*time.Millisecond)), w.Burst, w.Burst, idle, dur(opTimeout))
	var losses []float64
	for _, r := range rs {
		if !slices.Contains(losses, r.Loss) && r.Impl != nameTCP {
			losses = append(losses, r.Loss)
		}
	}
	for _, loss := range losses {
		fmt.Fprintf(&b, "### Loss %s\n\n", pct(loss))
		b.WriteString("| Implementation | Cold p50 | Cold p99 | Cold all served | Cold idle/cap | Warm p50 | Warm p99 | Warm idle/cap | After idle p50 | After idle p99 | After idle idle/cap | Errors |\n")
		b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, r := range rs {
			if r.Loss != loss && !(r.Impl == nameTCP && loss == 0) {
				continue
			}
			if r.Err != "" {
				fmt.Fprintf(&b, "| %s | failed: %s | | | | | | | | | | |\n", r.Impl, cell(r.Err))
				continue
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |\n", r.Impl,
				rttCell(r.Cold.P50, w), dur(r.Cold.P99), dur(r.Cold.Last), idleCap(r, r.Cold),
				rttCell(r.Warm.P50, w), dur(r.Warm.P99), idleCap(r, r.Warm),
				rttCell(r.AfterIdle.P50, w), dur(r.AfterIdle.P99), idleCap(r, r.AfterIdle),
				r.Cold.Errors+r.Warm.Errors+r.AfterIdle.Errors)
		}
		b.WriteString("\n| Implementation | Concurrent | ops/s | p50 | p99 | Errors |\n|---|---:|---:|---:|---:|---:|\n")
		for _, r := range rs {
			if r.Err != "" || (r.Loss != loss && !(r.Impl == nameTCP && loss == 0)) {
				continue
			}
			for _, l := range r.Loads {
				fmt.Fprintf(&b, "| %s | %d | %.0f | %s | %s | %d |\n", r.Impl, l.Workers, l.OpsPerSec, rttCell(l.P50, w), dur(l.P99), l.Errors)
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

func rttCell(d time.Duration, w WanConfig) string {
	if d == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%s (%.2f RTT)", dur(d), rtts(d, w))
}

func idleCap(r WanResult, b WanBurst) string {
	if r.Impl == nameTCP || r.Impl == nameRaw {
		return ""
	}
	return fmt.Sprintf("%d/%d", b.Idle, b.Capacity)
}

func pct(v float64) string { return strconv.FormatFloat(100*v, 'f', -1, 64) + "%" }

// wanChecks are the wan workload's targets, on the first loss rate measured (normally 0%).
func wanChecks(cfg Config, res Results, add func(target string, ok, pass bool, measured string, args ...any)) {
	w := cfg.Wan
	if len(res.Wan) == 0 {
		return
	}
	loss := w.Losses[0]
	on := fmt.Sprintf("WAN (RTT %s, loss %s)", dur(w.RTT()), pct(loss))
	q := findWan(res.Wan, nameQuicpool, loss)
	tcp := findWan(res.Wan, nameTCP, 0)
	c := w.Concurrency[0]
	var ql, tl *WanLoad
	if q != nil {
		ql = q.load(c)
	}
	if tcp != nil {
		tl = tcp.load(c)
	}
	t := fmt.Sprintf("%s, warm, %d concurrent: new-connection p50 <= 1.1 RTT", on, c)
	if ql != nil && ql.Ops > 0 {
		add(t, true, rtts(ql.P50, w) <= 1.1, "%s = %.2f RTT (%.0f ops/s)", dur(ql.P50), rtts(ql.P50, w), ql.OpsPerSec)
	} else {
		add(t, false, false, "not measured")
	}
	t = fmt.Sprintf("%s, warm, %d concurrent: new-connection p50 <= 0.6x TCP's", on, c)
	if ql != nil && tl != nil && ql.Ops > 0 && tl.Ops > 0 {
		add(t, true, float64(ql.P50) <= 0.6*float64(tl.P50), "%s vs %s (%s; TCP on the lossless path)", dur(ql.P50), dur(tl.P50),
			ratio(float64(ql.P50), float64(tl.P50)))
	} else {
		add(t, false, false, "not measured")
	}
	t = fmt.Sprintf("%s, cold (minCap %d): %d-wide burst p50 <= 2.2 RTT", on, w.Shape.MinCap, w.Burst)
	if q != nil && q.Cold.P50 > 0 {
		add(t, true, rtts(q.Cold.P50, w) <= 2.2, "%s = %.2f RTT (p99 %s, all served %s, %d errors)", dur(q.Cold.P50),
			rtts(q.Cold.P50, w), dur(q.Cold.P99), dur(q.Cold.Last), q.Cold.Errors)
	} else {
		add(t, false, false, "not measured")
	}
	t = fmt.Sprintf("%s: burst after %s idle p50 <= 1.2x warm burst p50", on, dur(w.Idle))
	if q != nil && q.AfterIdle.P50 > 0 && q.Warm.P50 > 0 {
		add(t, true, float64(q.AfterIdle.P50) <= 1.2*float64(q.Warm.P50), "%s vs %s (%s; idle/capacity %d/%d before, %d/%d when warm)",
			dur(q.AfterIdle.P50), dur(q.Warm.P50), ratio(float64(q.AfterIdle.P50), float64(q.Warm.P50)),
			q.AfterIdle.Idle, q.AfterIdle.Capacity, q.Warm.Idle, q.Warm.Capacity)
	} else {
		add(t, false, false, "not measured")
	}
}
