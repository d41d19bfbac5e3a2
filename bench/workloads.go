package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool"
)

// payload is what each side of a tunnel writes: 1 KiB.
var payload = make([]byte, 1024)

// opTimeout bounds every Get and every stream's I/O in the tunnel, burst and bulk workloads
// (NodePass's production get timeout is 5s).
const opTimeout = 5 * time.Second

// setupWait bounds starting a pair of pools and waiting for them to fill.
const setupWait = 20 * time.Second

// ---------------------------------------------------------------------------------------------
// One tunnel operation

// tunnelOp is one tunnel round trip as a real tunnel does it: the server takes any idle stream
// and its ID, the client takes the stream with that ID, each side writes 1 KiB and half-closes,
// reads the peer's data to EOF, then closes. It returns how long the two Gets took.
func tunnelOp(server, client Pool, n int, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	sc, cc, err := takePair(server, client, timeout)
	if err != nil {
		return 0, err
	}
	gets := time.Since(start)
	return gets, exchange(sc, cc, n, timeout)
}

// takePair takes a stream on the server (IncomingGet) and the same stream on the client
// (OutgoingGet of its ID).
func takePair(server, client Pool, timeout time.Duration) (sc, cc net.Conn, err error) {
	id, sc, err := server.IncomingGet(timeout)
	if err != nil {
		return nil, nil, fmt.Errorf("IncomingGet: %w", err)
	}
	cc, err = client.OutgoingGet(id, timeout)
	if err != nil {
		abort(sc)
		return nil, nil, fmt.Errorf("OutgoingGet: %w", err)
	}
	return sc, cc, nil
}

// exchange moves n bytes each way over a taken pair and closes it as a tunnel does: write,
// half-close, read the peer's data to EOF, close. On error both streams are released in both
// directions.
func exchange(sc, cc net.Conn, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	_ = sc.SetDeadline(deadline)
	_ = cc.SetDeadline(deadline)
	err := func() error {
		for _, c := range []net.Conn{sc, cc} {
			if _, err := c.Write(payload[:n]); err != nil {
				return fmt.Errorf("write: %w", err)
			}
			if err := halfClose(c); err != nil {
				return fmt.Errorf("half-close: %w", err)
			}
		}
		var buf [2048]byte
		for _, c := range []net.Conn{cc, sc} {
			got, err := readToEOF(c, buf[:])
			if err != nil {
				return fmt.Errorf("read: %w", err)
			}
			if got != int64(n) {
				return fmt.Errorf("read %d bytes, want %d", got, n)
			}
		}
		return nil
	}()
	if err != nil {
		abort(sc)
		abort(cc)
		return err
	}
	_ = sc.Close()
	_ = cc.Close()
	return nil
}

// readToEOF reads c until EOF and returns the number of bytes read.
func readToEOF(c net.Conn, buf []byte) (int64, error) {
	var total int64
	for {
		n, err := c.Read(buf)
		total += int64(n)
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// ---------------------------------------------------------------------------------------------
// 1. Tunnel round trip

// TunnelResult is one run of the tunnel workload.
type TunnelResult struct {
	Impl      string
	Shape     Shape
	Workers   int
	Ops       int           // successful round trips completed in the measured window
	OpsPerSec float64       // Ops / window
	P50, P99  time.Duration // latency of a whole round trip
	GetP99    time.Duration // latency of IncomingGet + OutgoingGet
	CPUPerOp  time.Duration // this process's CPU time (both sides) in the window, per successful op
	Packets   float64       // QUIC packets both sides sent in the window, per successful op (0: not readable)
	Errors    int           // failed round trips completed in the window
	Elsewhere float64       // share of the machine's CPUs other processes used meanwhile
	Tries     int           // runs made to get one with little CPU used elsewhere (measureQuietly)
	Err       string        // the run could not start

	// Set by medianTunnel when the run is the median of several.
	Runs           int
	MinOps, MaxOps float64
}

// medianTunnel returns the run with the median ops/s of several runs of one configuration,
// with the number of runs and the range of their ops/s. Failed runs count only when all failed.
func medianTunnel(runs []TunnelResult) TunnelResult {
	ok := slices.DeleteFunc(slices.Clone(runs), func(r TunnelResult) bool { return r.Err != "" })
	if len(ok) == 0 {
		return runs[0]
	}
	slices.SortFunc(ok, func(a, b TunnelResult) int { return cmp.Compare(a.OpsPerSec, b.OpsPerSec) })
	r := ok[len(ok)/2]
	r.Runs, r.MinOps, r.MaxOps = len(ok), ok[0].OpsPerSec, ok[len(ok)-1].OpsPerSec
	return r
}

// runTunnel runs workers concurrent tunnel loops for warmup + window and measures the ops that
// complete within the window.
func runTunnel(impl Impl, s Shape, workers int, warmup, window time.Duration) TunnelResult {
	r := TunnelResult{Impl: impl.Name, Shape: s, Workers: workers}
	pair, err := startPair(impl, s, setupWait)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer pair.Close()
	return runTunnelOn(pair, workers, warmup, window, nil)
}

// runTunnelOn is runTunnel on a started pair. It also reads this process's CPU time at the
// window's start and end, and, with a non-nil profile, writes a CPU profile of the window to it
// (r.Err says if the profiler could not start).
func runTunnelOn(pair *Pair, workers int, warmup, window time.Duration, profile io.Writer) TunnelResult {
	r := TunnelResult{Impl: pair.Impl.Name, Shape: pair.Shape, Workers: workers}
	from := time.Now().Add(warmup)
	to := from.Add(window)
	cpu := make(chan time.Duration, 1)
	packets := make(chan uint64, 1)
	profiled := make(chan error, 1)
	go func() {
		time.Sleep(time.Until(from))
		var perr error
		if profile != nil {
			perr = pprof.StartCPUProfile(profile)
		}
		start, sent := processCPU(), packetsSent(pair)
		time.Sleep(time.Until(to))
		cpu <- processCPU() - start
		packets <- packetsSent(pair) - sent
		if profile != nil && perr == nil {
			pprof.StopCPUProfile()
		}
		profiled <- perr
	}()
	type sample struct{ total, gets time.Duration }
	samples := make([][]sample, workers)
	errs := make([]int, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(to) {
				start := time.Now()
				gets, err := tunnelOp(pair.Server, pair.Client, len(payload), opTimeout)
				end := time.Now()
				if end.Before(from) || end.After(to) {
					continue
				}
				if err != nil {
					errs[w]++
					continue
				}
				samples[w] = append(samples[w], sample{end.Sub(start), gets})
			}
		}()
	}
	wg.Wait()

	var total, gets []time.Duration
	for w := range workers {
		r.Errors += errs[w]
		for _, s := range samples[w] {
			total = append(total, s.total)
			gets = append(gets, s.gets)
		}
	}
	r.Ops = len(total)
	r.OpsPerSec = float64(r.Ops) / window.Seconds()
	r.P50, r.P99 = percentile(total, 0.50), percentile(total, 0.99)
	r.GetP99 = percentile(gets, 0.99)
	if used := <-cpu; r.Ops > 0 {
		r.CPUPerOp = used / time.Duration(r.Ops)
	}
	if sent := <-packets; r.Ops > 0 {
		r.Packets = float64(sent) / float64(r.Ops)
	}
	if err := <-profiled; err != nil {
		r.Err = "cpu profile: " + err.Error()
	}
	return r
}

// percentile returns the p-quantile of ds (nearest rank), 0 for none. It sorts ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(float64(len(ds))*p+0.5) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

// ---------------------------------------------------------------------------------------------
// 2. Burst

// BurstResult is one run of the burst workload.
type BurstResult struct {
	Impl     string
	Takes    int
	Served   time.Duration // from the burst's start until every take was served
	Refilled time.Duration // from the burst's start until both sides were back at their idle count
	Refill   bool          // the pool was back at its idle count within the wait (pools only)
	Errors   int           // failed takes, over all runs
	Runs     int           // runs medianBurst chose from
	GCs      uint64        // garbage collections from the burst's start until it was back at capacity (or served)
	All      []BurstRun    // every run, in the order they ran (medianBurst)
	Err      string
}

// BurstRun is one run's time (back at capacity; raw quic-go: all served) and the garbage
// collections during it.
type BurstRun struct {
	Time time.Duration // notBack for a run that failed or never got back to capacity
	GCs  uint64
}

// notBack is the time of a burst run that failed or never got back to capacity: it sorts after
// every run that did.
const notBack = time.Duration(math.MaxInt64)

// back reports whether the run got back to capacity (raw quic-go: served every take).
func (r BurstRun) back() bool { return r.Time != notBack }

// medianBurst returns the median of runs of one implementation: by the time back at capacity
// (all served for raw quic-go, which keeps no streams), a run that did not refill or failed
// counting as the slowest. Errors add up over the runs.
func medianBurst(runs []BurstResult) BurstResult {
	key := func(r BurstResult) time.Duration {
		switch {
		case r.Err != "" || (r.Impl != nameRaw && !r.Refill):
			return notBack
		case r.Impl == nameRaw:
			return r.Served
		}
		return r.Refilled
	}
	sorted := slices.Clone(runs)
	slices.SortStableFunc(sorted, func(a, b BurstResult) int { return cmp.Compare(key(a), key(b)) })
	r := sorted[len(sorted)/2]
	r.Runs, r.Errors = len(runs), 0
	for _, run := range runs {
		r.Errors += run.Errors
		r.All = append(r.All, BurstRun{Time: key(run), GCs: run.GCs})
	}
	return r
}

// runBurst fills a pair, then takes 2 x maxCap streams at once (each take is a server
// IncomingGet and a client OutgoingGet, released at once as a tunnel would), and measures
// until all are served and until both sides hold as many idle streams as before. The watch for
// the idle counts starts once the last take is served, while the exchanges on the taken streams
// still run: back at capacity is the pool's time, not the exchanges'.
func runBurst(impl Impl, s Shape, refillWait time.Duration) BurstResult {
	r := BurstResult{Impl: impl.Name, Takes: 2 * s.MaxCap}
	pair, err := startPair(impl, s, setupWait)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer pair.Close()
	var serverIdle, clientIdle int
	if impl.Pooled {
		if err := pair.waitIdle(pair.Client.Capacity(), setupWait); err != nil {
			r.Err = err.Error()
			return r
		}
		time.Sleep(200 * time.Millisecond) // let the refill loops settle
		serverIdle, clientIdle = pair.Server.Active(), pair.Client.Active()
	}

	// A collection now, as testing.B runs one before a benchmark: the burst does not pay for
	// collecting what setting up its pair allocated (a pool's fill, just before it), only for
	// what it allocates itself.
	runtime.GC()
	gcs := gcCycles()
	start := time.Now()
	served := make(chan time.Duration, r.Takes)
	failed := make(chan error, r.Takes)
	var wg sync.WaitGroup
	for range r.Takes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc, cc, err := takePair(pair.Server, pair.Client, 2*opTimeout)
			served <- time.Since(start)
			if err == nil {
				err = exchange(sc, cc, 0, opTimeout)
			}
			failed <- err
		}()
	}
	for range r.Takes {
		r.Served = max(r.Served, <-served)
	}
	if impl.Pooled {
		deadline := start.Add(refillWait)
		for time.Now().Before(deadline) {
			if pair.Server.Active() >= serverIdle && pair.Client.Active() >= clientIdle {
				r.Refilled, r.Refill = time.Since(start), true
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	r.GCs = gcCycles() - gcs
	wg.Wait()
	for range r.Takes {
		if <-failed != nil {
			r.Errors++
		}
	}
	return r
}

// ---------------------------------------------------------------------------------------------
// 3. Fill

// FillResult is one run of the fill workload.
type FillResult struct {
	Impl     string
	Shape    Shape
	Fill     time.Duration // from the client's start until both sides hold minCap idle streams
	Min, Max time.Duration // the fastest and slowest of the runs medianFill took Fill from
	Runs     int           // runs that filled
	Err      string        // why the last run that failed failed
	Failed   int           // runs that failed
}

// medianFill folds runs of one implementation and shape into one result: the median of those
// that filled, with their range, and how many failed. A fill takes a few milliseconds, so one
// run says little: the scheduler alone moves it by a millisecond or two.
func medianFill(runs []FillResult) FillResult {
	r := FillResult{Impl: runs[0].Impl, Shape: runs[0].Shape}
	var fills []time.Duration
	for _, run := range runs {
		if run.Err != "" {
			r.Err = run.Err
			r.Failed++
			continue
		}
		fills = append(fills, run.Fill)
	}
	if len(fills) == 0 {
		return r
	}
	slices.Sort(fills)
	r.Fill, r.Min, r.Max, r.Runs = fills[len(fills)/2], fills[0], fills[len(fills)-1], len(fills)
	return r
}

// runFill starts a server, gives it 100ms to listen, then starts a client and measures until
// both sides report minCap idle streams (as each library counts them: NodePass and vistone
// count the control stream, quicpool does not).
func runFill(impl Impl, s Shape) FillResult {
	r := FillResult{Impl: impl.Name, Shape: s}
	addr, err := freeAddr()
	if err != nil {
		r.Err = err.Error()
		return r
	}
	server, err := impl.NewServer(s, addr)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer boundedClose(server)
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	client, err := impl.NewClient(s, addr)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer boundedClose(client)
	pair := &Pair{Impl: impl, Server: server, Client: client}
	if err := pair.waitIdle(s.MinCap, setupWait); err != nil {
		r.Err = err.Error()
		return r
	}
	r.Fill = time.Since(start)
	return r
}

// ---------------------------------------------------------------------------------------------
// 4. Recovery

// RecoveryResult is one run of the recovery workload.
type RecoveryResult struct {
	Impl        string
	HealthCheck bool          // NodePass's application health check was applied to the client
	Served      time.Duration // from the server's return until a tunnel op succeeded
	OK          bool          // an op succeeded within the wait
	Errors      int           // failed ops from the server's return until the first success
	After       int           // ops run after the first success
	AfterErrors int           // of those, the ones that failed
	Err         string
}

// recoveryGet bounds each Get while waiting for the server to come back.
const recoveryGet = 500 * time.Millisecond

// runRecovery fills a pair, closes the server, waits down, starts a new server on the same
// port and runs tunnel ops until one succeeds, then 20 more. With healthCheck, every failed op
// is counted on the client (AddError) and the client is flushed when ErrorCount() > Active()/2,
// as NodePass's application does; without it, each library is left to heal on its own.
func runRecovery(impl Impl, s Shape, down, wait time.Duration, healthCheck bool) RecoveryResult {
	r := RecoveryResult{Impl: impl.Name, HealthCheck: healthCheck}
	pair, err := startPair(impl, s, setupWait)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer pair.Close()
	boundedClose(pair.Server)
	pair.Server = nil
	time.Sleep(down)

	back := time.Now()
	deadline := back.Add(wait)
	for pair.Server == nil {
		server, err := impl.NewServer(s, pair.Addr)
		if err == nil {
			pair.Server = server
			break
		}
		if time.Now().After(deadline) {
			r.Err = "server could not listen again: " + err.Error()
			return r
		}
		time.Sleep(10 * time.Millisecond)
	}
	hc, _ := pair.Client.(healthChecked)
	for time.Now().Before(deadline) {
		if _, err := tunnelOp(pair.Server, pair.Client, len(payload), recoveryGet); err == nil {
			r.Served, r.OK = time.Since(back), true
			break
		}
		r.Errors++
		if healthCheck && hc != nil {
			hc.AddError()
			if hc.ErrorCount() > pair.Client.Active()/2 {
				hc.Flush()
				hc.ResetError()
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !r.OK {
		return r
	}
	for range 20 {
		r.After++
		if _, err := tunnelOp(pair.Server, pair.Client, len(payload), time.Second); err != nil {
			r.AfterErrors++
		}
	}
	return r
}

// ---------------------------------------------------------------------------------------------
// 5. Bulk

// BulkResult is the bulk workload's result for one implementation and stream count.
type BulkResult struct {
	Impl           string
	Streams        int
	Bytes          int64
	MiBps          float64 // median over the repetitions
	MinMiB, MaxMiB float64 // the slowest and fastest repetition
	Errors         int
	Err            string
}

// runBulk moves total bytes from the client to the server over streams streams taken from each
// implementation's pool (split evenly), and reports each implementation's median rate over reps
// transfers. One pair per implementation stays up for the whole workload; after one untimed
// warm-up transfer each (so that every connection has grown its flow-control windows), the
// repetitions take turns across the implementations, so that a disturbance on the machine
// spreads over all of them instead of hitting one. The time runs from the first write until the
// server has read every stream to EOF.
func runBulk(impls []Impl, s Shape, streams int, total int64, reps int) []BulkResult {
	rs := make([]BulkResult, len(impls))
	pairs := make([]*Pair, len(impls))
	rates := make([][]float64, len(impls))
	for i, impl := range impls {
		rs[i] = BulkResult{Impl: impl.Name, Streams: streams, Bytes: total}
		pair, err := startPair(impl, s, setupWait)
		if err != nil {
			rs[i].Err = err.Error()
			continue
		}
		defer pair.Close()
		pairs[i] = pair
		if _, err := bulkOnce(pair, streams, max(total/4, 1<<20)); err != nil {
			rs[i].Errors++
		}
	}
	for range reps {
		for i, pair := range pairs {
			if pair == nil {
				continue
			}
			type once struct {
				d   time.Duration
				err error
			}
			o, _, _ := measureQuietly(func() once {
				d, err := bulkOnce(pair, streams, total)
				return once{d, err}
			})
			d, err := o.d, o.err
			if err != nil {
				rs[i].Errors++
				rs[i].Err = err.Error()
				continue
			}
			rates[i] = append(rates[i], float64(total)/(1<<20)/d.Seconds())
		}
	}
	for i := range rs {
		if n := len(rates[i]); n > 0 {
			sort.Float64s(rates[i])
			rs[i].MiBps, rs[i].MinMiB, rs[i].MaxMiB = rates[i][n/2], rates[i][0], rates[i][n-1]
			rs[i].Err = ""
		}
	}
	return rs
}

func bulkOnce(pair *Pair, streams int, total int64) (time.Duration, error) {
	type taken struct{ sc, cc net.Conn }
	var pairs []taken
	for range streams {
		sc, cc, err := takePair(pair.Server, pair.Client, opTimeout)
		if err != nil {
			for _, p := range pairs {
				abort(p.sc)
				abort(p.cc)
			}
			return 0, err
		}
		pairs = append(pairs, taken{sc, cc})
	}
	per := total / int64(streams)
	deadline := time.Now().Add(2 * time.Minute)
	errs := make(chan error, 2*streams)
	var wg sync.WaitGroup
	start := time.Now()
	done := make([]time.Duration, len(pairs)) // when the server had read each stream to EOF
	for i, p := range pairs {
		_ = p.sc.SetDeadline(deadline)
		_ = p.cc.SetDeadline(deadline)
		wg.Add(2)
		go func() { // client: send, half-close, read the server's FIN, close
			defer wg.Done()
			buf := make([]byte, 64<<10)
			for left := per; left > 0; {
				n, err := p.cc.Write(buf[:min(left, int64(len(buf)))])
				if err != nil {
					errs <- err
					abort(p.cc)
					return
				}
				left -= int64(n)
			}
			_ = halfClose(p.cc)
			if _, err := readToEOF(p.cc, buf); err != nil {
				errs <- err
			}
			_ = p.cc.Close()
		}()
		go func() { // server: read to EOF, half-close, close
			defer wg.Done()
			buf := make([]byte, 64<<10)
			got, err := readToEOF(p.sc, buf)
			done[i] = time.Since(start)
			if err == nil && got != per {
				err = fmt.Errorf("server read %d bytes, want %d", got, per)
			}
			if err != nil {
				errs <- err
				abort(p.sc)
				return
			}
			_ = halfClose(p.sc)
			_ = p.sc.Close()
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return slices.Max(done), nil
}

// ---------------------------------------------------------------------------------------------
// 7. State accessors

// AccessorResult is one run of the accessor workload.
type AccessorResult struct {
	Impl        string
	Goroutines  int
	CallsPerSec float64
	Err         string
}

// runAccessors calls the client's Active and Capacity alternately from goroutines concurrent
// goroutines for d and counts the calls.
func runAccessors(impl Impl, s Shape, goroutines int, d time.Duration) AccessorResult {
	r := AccessorResult{Impl: impl.Name, Goroutines: goroutines}
	pair, err := startPair(impl, s, setupWait)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer pair.Close()
	var stop atomic.Bool
	counts := make([]int64, goroutines)
	var wg sync.WaitGroup
	start := time.Now()
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := int64(0)
			for !stop.Load() {
				pair.Client.Active()
				pair.Client.Capacity()
				n += 2
			}
			counts[g] = n
		}()
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)
	var total int64
	for _, n := range counts {
		total += n
	}
	r.CallsPerSec = float64(total) / elapsed.Seconds()
	return r
}

// ---------------------------------------------------------------------------------------------
// 8. Wake a waiting OutgoingGet

// WakeResult is one run of the wake workload.
type WakeResult struct {
	Impl     string
	Ops      int
	P50, P99 time.Duration
	Max      time.Duration
	Errors   int
	Err      string
}

// runWake measures how soon a client's OutgoingGet(id), already waiting, returns once the ID
// arrives. A plain quic-go server stands in for the server pool and holds each stream the
// client opens, after reading its 0x00, until the bench writes an ID on it: the bench starts
// OutgoingGet(id) for a fresh ID, waits 2ms so that the call is waiting, writes the ID, and
// times from that write until OutgoingGet returns (one loopback QUIC hop included).
func runWake(impl Impl, s Shape, ops int) WakeResult {
	r := WakeResult{Impl: impl.Name}
	addr, err := freeAddr()
	if err != nil {
		r.Err = err.Error()
		return r
	}
	tlsConf := serverTLS.Clone()
	tlsConf.NextProtos = []string{quicpool.ALPN}
	tlsConf.MinVersion = tls.VersionTLS13
	ln, err := quic.ListenAddr(addr, tlsConf, rawQUICConfig(s))
	if err != nil {
		r.Err = err.Error()
		return r
	}
	ctx, cancel := context.WithCancel(context.Background())
	pending := make(chan *quic.Stream, 1024)
	var conns []*quic.Conn
	var mu sync.Mutex
	defer func() {
		cancel()
		mu.Lock()
		for _, c := range conns {
			_ = c.CloseWithError(0, "done")
		}
		mu.Unlock()
		_ = ln.Close()
	}()
	go func() {
		for {
			conn, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			go func() {
				for {
					st, err := conn.AcceptStream(ctx)
					if err != nil {
						return
					}
					go func() {
						var b [1]byte
						_ = st.SetReadDeadline(time.Now().Add(30 * time.Second))
						if _, err := io.ReadFull(st, b[:]); err != nil || b[0] != 0 {
							st.CancelRead(1)
							st.CancelWrite(1)
							return
						}
						pending <- st
					}()
				}
			}()
		}
	}()

	client, err := impl.NewClient(s, addr)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer boundedClose(client)

	var lat []time.Duration
	type got struct {
		c   net.Conn
		err error
		at  time.Time
	}
	for range ops {
		var st *quic.Stream
		select {
		case st = <-pending:
		case <-time.After(10 * time.Second):
			r.Err = "the client opened no stream within 10s"
			r.Ops, r.P50, r.P99 = len(lat), percentile(lat, 0.5), percentile(lat, 0.99)
			return r
		}
		var id [4]byte
		for id == [4]byte{} {
			_, _ = rand.Read(id[:])
		}
		res := make(chan got, 1)
		go func() {
			c, err := client.OutgoingGet(hex.EncodeToString(id[:]), 2*time.Second)
			res <- got{c, err, time.Now()}
		}()
		time.Sleep(2 * time.Millisecond)
		written := time.Now()
		_, werr := st.Write(id[:])
		g := <-res
		if werr != nil || g.err != nil {
			r.Errors++
		} else {
			lat = append(lat, g.at.Sub(written))
		}
		if g.c != nil {
			abort(g.c)
		}
		st.CancelRead(0)
		st.CancelWrite(0)
	}
	r.Ops = len(lat)
	r.P50, r.P99 = percentile(lat, 0.5), percentile(lat, 0.99)
	if len(lat) > 0 {
		r.Max = slices.Max(lat)
	}
	return r
}

// packetsSent is the number of QUIC packets both pools of pair have sent on their connections so
// far, for the implementations whose connections can be read (quicpool's Stats, raw quic-go's
// own connections); 0 for the others.
func packetsSent(pair *Pair) uint64 {
	var n uint64
	for _, p := range []Pool{pair.Server, pair.Client} {
		switch p := p.(type) {
		case *quicpool.Pool:
			for _, c := range p.Stats().Conns {
				n += c.PacketsSent
			}
		case *rawServer:
			n += p.packetsSent()
		case *rawClient:
			n += p.packetsSent()
		}
	}
	return n
}

// gcCycles is how many garbage collections this process has completed.
func gcCycles() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
