package main

import (
	"errors"
	"flag"
	"fmt"
	"html"
	"math"
	"runtime"
	"slices"
	"strings"
	"time"
)

// ---------------------------------------------------------------------------------------------
// 9. Scale
//
// Pools of n streams each side (shape n/n, so that they fill to n idle streams) for n up to
// 8192, quicpool's largest (64 shards of 128 streams). A pair is started in this process after
// collecting garbage, filled, and measured at rest: live heap and goroutines over the baseline,
// per idle stream end. Then tunnel ops (the tunnel workload's) run at each worker count, with the
// process's CPU time per op.

var (
	scaleCapsFlag    = flag.String("scale-caps", "64,1024,8192", "scale workload: pool sizes n (shape n/n, n idle streams each side), comma separated")
	scaleWorkersFlag = flag.String("scale-workers", "1,16,64,256,1024", "scale workload: concurrent workers, comma separated")
	scaleWindowFlag  = flag.Duration("scale-window", 2*time.Second, "scale workload: measured time per run")
	scaleWarmupFlag  = flag.Duration("scale-warmup", 500*time.Millisecond, "scale workload: unmeasured time before each run")
	scaleFillFlag    = flag.Duration("scale-fill", 30*time.Second, "scale workload: how long to wait for a pool to fill")
)

// ScaleConfig is what the scale workload measures, from its flags.
type ScaleConfig struct {
	Caps, Workers            []int
	Window, Warmup, FillWait time.Duration
	Quick                    bool
}

// scaleConfig reads the scale workload's flags; quick shortens those not set on the command line.
func scaleConfig(quick bool, set map[string]bool) (ScaleConfig, error) {
	if quick {
		for name, v := range map[string]string{"scale-caps": "64,1024", "scale-workers": "1,64,256",
			"scale-window": "500ms", "scale-warmup": "200ms", "scale-fill": "10s"} {
			if !set[name] {
				_ = flag.Set(name, v)
			}
		}
	}
	c := ScaleConfig{Window: *scaleWindowFlag, Warmup: *scaleWarmupFlag, FillWait: *scaleFillFlag, Quick: quick}
	var err error
	if c.Caps, err = parseInts(*scaleCapsFlag); err != nil {
		return c, fmt.Errorf("-scale-caps: %w", err)
	}
	if c.Workers, err = parseInts(*scaleWorkersFlag); err != nil {
		return c, fmt.Errorf("-scale-workers: %w", err)
	}
	if c.Window <= 0 {
		return c, errors.New("-scale-window must be positive")
	}
	return c, nil
}

// ScaleResult is one implementation at one pool size.
type ScaleResult struct {
	Impl                   string
	N                      int // streams asked for, each side
	Shards                 string
	IdleClient, IdleServer int
	Fill                   time.Duration // from the client's start until the pools stopped growing
	Heap                   int64         // live heap over the baseline, both sides in this process
	Goroutines             int
	Runs                   []TunnelResult
	// Profile is one more tunnel run with the CPU profiler on, for quicpool at the two
	// configurations the scale target compares (scaleProfiled); nil for the others.
	Profile *ProfileResult
	Err     string
}

// scaleProfiled returns the worker count whose tunnel op the scale workload profiles for
// quicpool at pool size n: the two configurations the scale target compares (64 workers on 64
// streams, the most workers on the most streams), or 0.
func scaleProfiled(c ScaleConfig, n int) int {
	switch {
	case slices.Max(c.Caps) == 64: // one configuration: nothing to compare
		return 0
	case n == slices.Max(c.Caps):
		return slices.Max(c.Workers)
	case n == 64 && slices.Contains(c.Workers, 64):
		return 64
	}
	return 0
}

// Ends is the idle stream ends the pair holds (a stream idle on both sides counts twice).
func (r ScaleResult) Ends() int { return r.IdleClient + r.IdleServer }

// HeapPer is the heap per idle stream end (0 when there are none).
func (r ScaleResult) HeapPer() float64 {
	if r.Ends() == 0 {
		return 0
	}
	return float64(r.Heap) / float64(r.Ends())
}

// GoroutinesPer is the goroutines per idle stream end.
func (r ScaleResult) GoroutinesPer() float64 {
	if r.Ends() == 0 {
		return 0
	}
	return float64(r.Goroutines) / float64(r.Ends())
}

// marginal is the heap per idle stream end that r holds beyond the smallest pool of the same
// implementation (0 when there is none to compare with): the per-stream cost without the pair's
// fixed cost.
func marginal(rs []ScaleResult, r ScaleResult) float64 {
	var base *ScaleResult
	for i := range rs {
		if b := &rs[i]; b.Impl == r.Impl && b.Err == "" && b.N < r.N && b.Ends() > 0 && (base == nil || b.N < base.N) {
			base = b
		}
	}
	if base == nil || r.Ends() <= base.Ends() {
		return 0
	}
	return float64(r.Heap-base.Heap) / float64(r.Ends()-base.Ends())
}

func (r *ScaleResult) run(workers int) *TunnelResult {
	for i := range r.Runs {
		if r.Runs[i].Workers == workers && r.Runs[i].Err == "" && r.Runs[i].Ops > 0 {
			return &r.Runs[i]
		}
	}
	return nil
}

// scaleShape is a pool of n streams each side.
func scaleShape(n int) Shape {
	return Shape{MinCap: n, MaxCap: n, MinIvl: 100 * time.Millisecond, MaxIvl: time.Second, KeepAlive: 30 * time.Second}
}

// runScaleWorkload runs every implementation at every pool size.
func runScaleWorkload(cfg Config) []ScaleResult {
	var out []ScaleResult
	for _, n := range cfg.Scale.Caps {
		for _, impl := range cfg.Impls {
			r := runScale(impl, n, cfg.Scale)
			logf("scale %s n=%d: shards %s, idle %d/%d after %s, heap %s (%s per idle stream end), %d goroutines %s", impl.Name, n,
				r.Shards, r.IdleClient, r.IdleServer, dur(r.Fill), bytes(float64(r.Heap)), bytes(r.HeapPer()), r.Goroutines, r.Err)
			for _, t := range r.Runs {
				logf("scale %s n=%d %d workers: %.0f ops/s p50 %s p99 %s cpu/op %s packets/op %.2f errors %d %s", impl.Name, n, t.Workers,
					t.OpsPerSec, dur(t.P50), dur(t.P99), dur(t.CPUPerOp), t.Packets, t.Errors, t.Err)
			}
			out = append(out, r)
			settle()
		}
	}
	return out
}

// runScale starts a pair of n/n pools, waits until both sides hold n idle streams or stop
// growing, measures heap and goroutines, then runs the tunnel op at each worker count.
func runScale(impl Impl, n int, c ScaleConfig) ScaleResult {
	r := ScaleResult{Impl: impl.Name, N: n, Shards: "1"}
	s := scaleShape(n)
	settle()
	heap0, g0 := settledHeap()
	addr, err := freeAddr()
	if err != nil {
		r.Err = err.Error()
		return r
	}
	pair := &Pair{Impl: impl, Shape: s, Addr: addr}
	defer pair.Close()
	if pair.Server, err = impl.NewServer(s, addr); err != nil {
		r.Err = err.Error()
		return r
	}
	start := time.Now()
	if pair.Client, err = impl.NewClient(s, addr); err != nil {
		r.Err = err.Error()
		return r
	}
	if err := pair.takeControl(setupWait); err != nil {
		r.Err = err.Error()
		return r
	}
	if impl.Pooled {
		// Until both sides hold n (n-1: NodePass and vistone count the control stream, taken
		// above, among them), or neither has grown for a second (vistone's server keeps 128).
		deadline := start.Add(c.FillWait)
		last, grew := 0, time.Now()
		for time.Now().Before(deadline) {
			cl, sv := pair.Client.Active(), pair.Server.Active()
			if cl >= n-1 && sv >= n-1 {
				break
			}
			if cl+sv > last {
				last, grew = cl+sv, time.Now()
			} else if time.Since(grew) > time.Second {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		r.Fill = time.Since(start)
		time.Sleep(300 * time.Millisecond) // let the refill settle
	}
	type sharded interface{ ShardCount() int }
	if cs, ok := pair.Client.(sharded); ok {
		r.Shards = fmt.Sprint(cs.ShardCount())
		if ss, ok := pair.Server.(sharded); ok {
			r.Shards += fmt.Sprintf(" / %d", ss.ShardCount())
		}
	}
	heap1, g1 := settledHeap()
	r.IdleClient, r.IdleServer = pair.Client.Active(), pair.Server.Active()
	r.Heap, r.Goroutines = heap1-heap0, g1-g0
	refilled := func() { // back near the idle count the run before left, at most 5s
		deadline := time.Now().Add(5 * time.Second)
		for impl.Pooled && pair.Client.Active() < r.IdleClient*9/10 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	for _, w := range c.Workers {
		refilled()
		t, elsewhere, tries := measureQuietly(func() TunnelResult { return runTunnelOn(pair, w, c.Warmup, c.Window, nil) })
		t.Elsewhere, t.Tries = elsewhere, tries
		r.Runs = append(r.Runs, t)
		settle()
	}
	if w := scaleProfiled(c, n); w > 0 && impl.Name == nameQuicpool {
		refilled()
		p, _, _ := measureQuietly(func() ProfileResult { return profilePair(pair, w, c.Warmup, c.Window) })
		r.Profile = &p
		settle()
	}
	return r
}

// ---------------------------------------------------------------------------------------------
// Report

func findScale(rs []ScaleResult, impl string, n int) *ScaleResult {
	return first(rs, func(r *ScaleResult) bool { return r.Impl == impl && r.N == n && r.Err == "" })
}

func scaleTable(cfg Config, rs []ScaleResult) string {
	if len(rs) == 0 {
		return ""
	}
	c := cfg.Scale
	var b strings.Builder
	quick := ""
	if c.Quick {
		quick = " (-quick: the full run goes to 8192 streams and 1024 workers)"
	}
	fmt.Fprintf(&b, "## 9. Scale\n\nPools of n streams each side (shape n/n) for n in %s%s, both sides in this process. "+
		"*At rest*: after two GCs, live heap and goroutines over the process's baseline (taken just before the pair "+
		"started), once both sides hold n idle streams (n-1 for NodePass and vistone, whose count included the control "+
		"stream) or have not grown for a second, divided by the idle stream ends "+
		"(client idle + server idle: a stream idle on both sides counts twice). *Added per end*: the heap over the "+
		"smallest pool's, per idle stream end over its count: the per-stream cost without the pair's fixed cost. Then the tunnel op (as in 1.) with each "+
		"worker count for %s after %s unmeasured; *CPU/op*: this process's CPU time (user + system, all threads, both "+
		"sides and the Go runtime) in the window divided by the ops completed in it. Raw quic-go keeps no idle "+
		"streams.\n\n", intList(c.Caps), quick, dur(c.Window), dur(c.Warmup))
	b.WriteString("| Streams each side | Implementation | Shards client / server | Idle client / server | Fill | Heap | Heap per idle stream end | Added per end | Goroutines | Goroutines per idle stream end |\n")
	b.WriteString("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rs {
		if r.Err != "" {
			fmt.Fprintf(&b, "| %d | %s | failed: %s | | | | | | | |\n", r.N, r.Impl, cell(r.Err))
			continue
		}
		per, gper, added := "n/a", "n/a", ""
		if r.Ends() > 0 {
			per, gper = bytes(r.HeapPer()), fmt.Sprintf("%.3f", r.GoroutinesPer())
		}
		if m := marginal(rs, r); m > 0 {
			added = bytes(m)
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %d / %d | %s | %s | %s | %s | %d | %s |\n", r.N, r.Impl, r.Shards, r.IdleClient, r.IdleServer,
			dur(r.Fill), bytes(float64(r.Heap)), per, added, r.Goroutines, gper)
	}
	b.WriteString("\n| Streams each side | Workers | Implementation | ops/s | p50 | p99 | CPU/op | Packets/op | Errors | Others' CPU |\n")
	b.WriteString("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, n := range c.Caps {
		for _, w := range c.Workers {
			for _, r := range rs {
				if r.N != n {
					continue
				}
				for _, t := range r.Runs {
					if t.Workers != w {
						continue
					}
					if t.Err != "" {
						fmt.Fprintf(&b, "| %d | %d | %s | failed: %s | | | | | | |\n", n, w, r.Impl, cell(t.Err))
						continue
					}
					packets := ""
					if t.Packets > 0 {
						packets = fmt.Sprintf("%.2f", t.Packets)
					}
					fmt.Fprintf(&b, "| %d | %d | %s | %.0f | %s | %s | %s | %s | %d | %.1f%% |\n", n, w, r.Impl, t.OpsPerSec, dur(t.P50),
						dur(t.P99), dur(t.CPUPerOp), packets, t.Errors, 100*t.Elsewhere)
				}
			}
		}
	}
	b.WriteString("\n")
	if big, small := scaleProfiles(c, rs); big != nil && small != nil {
		fmt.Fprintf(&b, "Where quicpool's CPU goes at the two configurations the scale target compares: one more tunnel run of each "+
			"(%s after %s unmeasured) with Go's CPU profiler on, split as in section 1c. *Difference*: %d workers on %d streams "+
			"minus 64 workers on 64 streams, per op.\n\n", dur(c.Window), dur(c.Warmup), big.Workers, slices.Max(c.Caps))
		b.WriteString(cpuPartsTable([]ProfileResult{*big, *small}, []string{
			fmt.Sprintf("%d streams, %d workers", slices.Max(c.Caps), big.Workers), "64 streams, 64 workers"}))
	}
	return b.String()
}

// scaleProfiles returns quicpool's profiled runs at the most streams and at 64, if both ran.
func scaleProfiles(c ScaleConfig, rs []ScaleResult) (big, small *ProfileResult) {
	if len(c.Caps) == 0 || slices.Max(c.Caps) == 64 {
		return nil, nil
	}
	if r := findScale(rs, nameQuicpool, slices.Max(c.Caps)); r != nil {
		big = r.Profile
	}
	if r := findScale(rs, nameQuicpool, 64); r != nil {
		small = r.Profile
	}
	return big, small
}

func intList(ns []int) string {
	var s []string
	for _, n := range ns {
		s = append(s, fmt.Sprint(n))
	}
	return strings.Join(s, ", ")
}

// ---------------------------------------------------------------------------------------------
// Targets of the performance issue: the wide-area path, fill, scale and CPU per op

// perfChecklist compares the wan, fill, scale and tunnel numbers with the performance targets.
func perfChecklist(cfg Config, res Results) (string, []check) {
	var checks []check
	add := func(target string, ok, pass bool, measured string, args ...any) {
		checks = append(checks, check{target: target, measured: fmt.Sprintf(measured, args...), pass: pass, measuredOK: ok})
	}
	wanChecks(cfg, res, add)
	fillChecks(cfg, res, add)
	scaleChecks(cfg, res, add)
	tunnelRawChecks(cfg, res, add)
	if len(checks) == 0 {
		return "", nil
	}
	return checkTable("Targets (performance: wide-area path, fill, scale, CPU per op), against this run's numbers", checks), checks
}

// fillChecks: for every shape, quicpool's median fill to minCap is no slower than NodePass's.
func fillChecks(cfg Config, res Results, add func(string, bool, bool, string, ...any)) {
	if len(res.Fill) == 0 {
		return
	}
	find := func(impl string, s Shape) *FillResult {
		for i := range res.Fill {
			if r := &res.Fill[i]; r.Impl == impl && r.Shape == s && r.Runs > 0 {
				return r
			}
		}
		return nil
	}
	for _, s := range cfg.Shapes {
		t := fmt.Sprintf("Fill to minCap, %s: median no slower than NodePass's", s)
		q, n := find(nameQuicpool, s), find(nameNodePass, s)
		if q == nil || n == nil {
			add(t, false, false, "not measured")
			continue
		}
		add(t, true, q.Fill <= n.Fill, "%s vs %s (%s; runs %s – %s against %s – %s)", dur(q.Fill), dur(n.Fill),
			ratio(float64(q.Fill), float64(n.Fill)), dur(q.Min), dur(q.Max), dur(n.Min), dur(n.Max))
	}
}

// scaleChecks: throughput holds from 64 workers on 64 streams to the most workers on the most
// streams, and the heap per idle stream stays flat.
func scaleChecks(cfg Config, res Results, add func(string, bool, bool, string, ...any)) {
	if len(res.Scale) == 0 {
		return
	}
	c := cfg.Scale
	bigN, bigW := slices.Max(c.Caps), slices.Max(c.Workers)
	t := fmt.Sprintf("Scale: ops/s at %d workers on %d streams >= ops/s at 64 workers on 64 streams", bigW, bigN)
	var big, small *TunnelResult
	if r := findScale(res.Scale, nameQuicpool, bigN); r != nil {
		big = r.run(bigW)
	}
	if r := findScale(res.Scale, nameQuicpool, 64); r != nil {
		small = r.run(64)
	}
	if big != nil && small != nil {
		add(t, true, big.OpsPerSec >= small.OpsPerSec, "%.0f vs %.0f ops/s (%s); p99 %s vs %s", big.OpsPerSec, small.OpsPerSec,
			ratio(big.OpsPerSec, small.OpsPerSec), dur(big.P99), dur(small.P99))
	} else {
		add(t, false, false, "not measured")
	}
	// Flat means that a stream costs the same whatever the pool's size: the heap a pool adds per
	// stream over the smallest pool (the slope), compared across the larger pools. The heap per
	// stream of each pool is shown too; in the smallest pool it is mostly the fixed cost of the
	// engine, the actors and the connections, divided by few streams.
	var pers, adds []string
	lo, hi := math.Inf(1), 0.0
	for _, n := range c.Caps {
		r := findScale(res.Scale, nameQuicpool, n)
		if r == nil || r.HeapPer() <= 0 {
			continue
		}
		pers = append(pers, fmt.Sprintf("%d: %s", n, bytes(r.HeapPer())))
		if m := marginal(res.Scale, *r); m > 0 {
			lo, hi = min(lo, m), max(hi, m)
			adds = append(adds, fmt.Sprintf("%d: %s", n, bytes(m)))
		}
	}
	t = fmt.Sprintf("Scale: heap per idle stream flat from %d to %d streams (added per stream over the smallest pool, max/min <= 1.25)",
		slices.Min(c.Caps), bigN)
	if len(adds) >= 2 {
		add(t, true, hi <= 1.25*lo, "added per stream %s (max/min %.2f); heap per stream in all %s", strings.Join(adds, ", "), hi/lo,
			strings.Join(pers, ", "))
	} else {
		add(t, false, false, "not measured (needs three pool sizes)")
	}
}

// tunnelRawChecks: for every shape, at 16 and 64 workers, quicpool against raw quic-go (server
// opens): ops/s, p50 and CPU per op. For the first shape, when the tunnel workload did not run
// that worker count, the scale workload's 64/64 pools stand in.
func tunnelRawChecks(cfg Config, res Results, add func(string, bool, bool, string, ...any)) {
	if len(res.Tunnel) == 0 && len(res.Scale) == 0 {
		return
	}
	for i, s := range cfg.Shapes {
		if i > 0 && len(res.Tunnel) == 0 {
			break
		}
		for _, w := range []int{16, 64} {
			q, r := findTunnel(res.Tunnel, nameQuicpool, s, w), findTunnel(res.Tunnel, nameRaw, s, w)
			where := ""
			if (q == nil || r == nil) && i == 0 { // the scale workload's stand-in, if it ran
				q, r, where = nil, nil, "; the scale workload's 64/64 pools"
				if qs, rs := findScale(res.Scale, nameQuicpool, 64), findScale(res.Scale, nameRaw, 64); qs != nil && rs != nil {
					q, r = qs.run(w), rs.run(w)
				}
			}
			tunnelRawCheck(fmt.Sprintf("Tunnel %s, %d workers", s, w), where, q, r, add)
		}
	}
}

// tunnelRawCheck adds the three targets of one shape and worker count: ops/s >= 0.9x raw quic-go's,
// p50 <= 1.1x and CPU per op <= 1.2x.
func tunnelRawCheck(title, where string, q, r *TunnelResult, add func(string, bool, bool, string, ...any)) {
	ok := q != nil && r != nil && q.Ops > 0 && r.Ops > 0
	t := title + ": ops/s >= 0.9x raw quic-go (server opens)"
	if ok {
		add(t, true, q.OpsPerSec >= 0.9*r.OpsPerSec, "%.0f vs %.0f ops/s (%s%s)", q.OpsPerSec, r.OpsPerSec, ratio(q.OpsPerSec, r.OpsPerSec), where)
	} else {
		add(t, false, false, "not measured")
	}
	t = title + ": p50 <= 1.1x raw quic-go's"
	if ok {
		add(t, true, float64(q.P50) <= 1.1*float64(r.P50), "%s vs %s (%s%s)", dur(q.P50), dur(r.P50), ratio(float64(q.P50), float64(r.P50)), where)
	} else {
		add(t, false, false, "not measured")
	}
	t = title + ": CPU/op <= 1.2x raw quic-go's"
	if ok && q.CPUPerOp > 0 && r.CPUPerOp > 0 {
		add(t, true, float64(q.CPUPerOp) <= 1.2*float64(r.CPUPerOp), "%s vs %s (%s%s)", dur(q.CPUPerOp), dur(r.CPUPerOp),
			ratio(float64(q.CPUPerOp), float64(r.CPUPerOp)), where)
	} else {
		add(t, false, false, "not measured")
	}
}

// ---------------------------------------------------------------------------------------------
// Charts: ops/s and p99 against workers, at the largest pool size

// scaleCharts returns the scale workload's charts by file name.
func scaleCharts(cfg Config, res Results) map[string]string {
	charts := map[string]string{}
	if len(res.Scale) == 0 {
		return charts
	}
	n := slices.Max(cfg.Scale.Caps)
	var ops, p99 []LineSeries
	for _, name := range []string{nameQuicpool, nameNodePass, nameVistone, nameRaw} {
		r := findScale(res.Scale, name, n)
		if r == nil {
			continue
		}
		o, p := LineSeries{Name: name}, LineSeries{Name: name}
		for _, t := range r.Runs {
			if t.Err != "" || t.Ops == 0 {
				continue
			}
			o.Points = append(o.Points, Point{float64(t.Workers), t.OpsPerSec})
			p.Points = append(p.Points, Point{float64(t.Workers), float64(t.P99) / float64(time.Millisecond)})
		}
		ops, p99 = append(ops, o), append(p99, p)
	}
	if len(ops) == 0 {
		return charts
	}
	note := fmt.Sprintf("%d/%d pools, tunnel op (1 KiB each way), loopback, %d CPUs", n, n, runtime.NumCPU())
	charts["scale-ops.svg"] = lineChart("Scale: tunnel ops/s against workers (higher is better)", note, "workers", "ops/s", ops, false)
	charts["scale-p99.svg"] = lineChart("Scale: tunnel p99 against workers (lower is better)", note, "workers", "p99, ms (log)", p99, true)
	return charts
}

// Point is one point of a line chart.
type Point struct{ X, Y float64 }

// LineSeries is one line of a chart.
type LineSeries struct {
	Name   string
	Points []Point
}

// lineChart draws lines against a log2 x axis (worker counts) as an SVG document, y linear from
// 0 or, with logY, logarithmic.
func lineChart(title, note, xLabel, yLabel string, series []LineSeries, logY bool) string {
	const (
		width, height            = 760, 420
		left, right, top, bottom = 80, 190, 76, 50
	)
	xs := map[float64]bool{}
	minY, maxY := math.Inf(1), 0.0
	for _, s := range series {
		for _, p := range s.Points {
			xs[p.X] = true
			if p.Y > 0 {
				minY, maxY = min(minY, p.Y), max(maxY, p.Y)
			}
		}
	}
	if maxY == 0 {
		minY, maxY = 1, 1
	}
	var xv []float64
	for x := range xs {
		xv = append(xv, x)
	}
	slices.Sort(xv)
	if len(xv) == 0 {
		xv = []float64{1}
	}
	lx0, lx1 := math.Log2(max(xv[0], 1)), math.Log2(max(xv[len(xv)-1], 1))
	if lx1 == lx0 {
		lx1 = lx0 + 1
	}
	x := func(v float64) float64 {
		return left + (math.Log2(max(v, 1))-lx0)/(lx1-lx0)*(width-left-right)
	}
	y0, y1 := 0.0, maxY*1.1
	if logY {
		y0, y1 = math.Floor(math.Log10(minY)), math.Ceil(math.Log10(maxY))
		if y1 == y0 {
			y1++
		}
	}
	y := func(v float64) float64 {
		if logY {
			v = math.Log10(max(v, math.Pow(10, y0)))
		}
		return top + (1-(v-y0)/(y1-y0))*(height-top-bottom)
	}
	colors := []string{"#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#718096"}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="13">`+"\n",
		width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="12" y="22" font-size="16" font-weight="bold">%s</text>`+"\n", html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="12" y="40" font-size="12" fill="#555555">%s</text>`+"\n", html.EscapeString(note))
	// Axes, x ticks at the worker counts, y ticks.
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333333"/>`+"\n", left, height-bottom, width-right, height-bottom)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333333"/>`+"\n", left, top, left, height-bottom)
	for _, v := range xv {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%g</text>`+"\n", x(v), height-bottom+18, v)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="#555555">%s</text>`+"\n", (left+width-right)/2, height-8, html.EscapeString(xLabel))
	var ticks []float64
	if logY {
		for e := y0; e <= y1; e++ {
			ticks = append(ticks, math.Pow(10, e))
		}
	} else {
		step := math.Pow(10, math.Floor(math.Log10(y1/4)))
		for _, m := range []float64{1, 2, 5, 10} {
			if y1/(step*m) <= 6 {
				step *= m
				break
			}
		}
		for v := 0.0; v <= y1; v += step {
			ticks = append(ticks, v)
		}
	}
	for _, v := range ticks {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e2e8f0"/>`+"\n", left, y(v), width-right, y(v))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%g</text>`+"\n", left-6, y(v), v)
	}
	fmt.Fprintf(&b, `<text x="12" y="%d" fill="#555555">%s</text>`+"\n", top-16, html.EscapeString(yLabel))
	for si, s := range series {
		color := colors[si%len(colors)]
		var pts []string
		for _, p := range s.Points {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p.X), y(p.Y)))
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", x(p.X), y(p.Y), color)
		}
		if len(pts) > 1 {
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), color)
		}
		ly := top + 10 + si*20
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/>`+"\n", width-right+16, ly-6, color)
		fmt.Fprintf(&b, `<text x="%d" y="%d" dominant-baseline="middle">%s</text>`+"\n", width-right+34, ly, html.EscapeString(s.Name))
	}
	b.WriteString("</svg>\n")
	return b.String()
}
