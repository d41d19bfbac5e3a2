// Command bench runs the same workloads on quicpool, NodePass quic v1.1.1, vistone quic v1.0.0
// and raw quic-go in one run on one machine, and writes the comparison as Markdown tables (to
// stdout and to -out) and SVG bar charts (next to -out).
//
//	cd bench && go run .          # the full run, a few minutes; writes results/latest.md
//	cd bench && go run . -quick   # about two minutes, for CI; writes results/quick.md
//	cd bench && go run . -only crash,outage   # only the given workloads
//
// Workloads (-only): tunnel, profile, wake, burst, fill, recovery, crash, outage, bulk, memory,
// accessors, hostile, wan, scale. Everything runs on 127.0.0.1 (hostile's attacker on
// 127.0.0.2; wan's wide-area path is emulated by relays in the process); every operation is
// bounded by a timeout and failures are counted, so a peer that hangs cannot stop the run.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is what one run measures, from the flags.
type Config struct {
	Quick        bool
	Shapes       []Shape // the first is the shape of every workload but tunnel and fill
	Workers      []int
	Warmup       time.Duration
	Duration     time.Duration
	TunnelReps   int
	FillReps     int
	BurstReps    int
	RefillWait   time.Duration
	RecoveryDown time.Duration
	RecoveryWait time.Duration
	HealthCheck  bool
	CrashDown    time.Duration
	CrashWait    time.Duration
	OutageCuts   []time.Duration
	OutageWait   time.Duration
	Disrupted    []Impl // the implementations crash and outage run on
	BulkBytes    int64
	BulkReps     int
	Idle         int
	AccessorTime time.Duration
	WakeOps      int
	Only         []string
	Impls        []Impl
	Wan          WanConfig
	Scale        ScaleConfig
	Out          string
	Machine      string
}

// workloads are the names -only accepts, in the order they run.
var workloads = []string{"tunnel", "profile", "wake", "burst", "fill", "recovery", "crash", "outage", "bulk", "memory", "accessors", "hostile", "wan", "scale"}

func main() {
	var (
		quick        = flag.Bool("quick", false, "a short run (about two minutes) for CI: 16 workers, the 32/64 shape, small sizes")
		shapes       = flag.String("shapes", "32/64,64/1024", "pool shapes minCap/maxCap; the first is used by every workload, the others by tunnel and fill")
		workers      = flag.String("workers", "1,16,64,256", "tunnel workload: concurrent workers, comma separated")
		duration     = flag.Duration("duration", 3*time.Second, "tunnel workload: measured time per run")
		warmup       = flag.Duration("warmup", 500*time.Millisecond, "tunnel workload: unmeasured time before each run")
		tunnelReps   = flag.Int("tunnel-reps", 3, "tunnel workload: runs per configuration (the median by ops/s is reported)")
		fillReps     = flag.Int("fill-reps", 9, "fill workload: runs per implementation and shape (the median is reported)")
		burstReps    = flag.Int("burst-reps", 5, "burst workload: runs per implementation (the median is reported)")
		tries        = flag.Int("quiet-tries", 4, "tries per measurement while other processes use more than 5% of the CPUs (the quietest is kept)")
		refillWait   = flag.Duration("refill-wait", 10*time.Second, "burst workload: how long to wait for the pool to refill")
		down         = flag.Duration("recovery-down", time.Second, "recovery workload: how long the server stays away")
		recWait      = flag.Duration("recovery-wait", 10*time.Second, "recovery workload: how long to wait for a served stream")
		health       = flag.Bool("health-check", true, "recovery workload: also run each pool with NodePass's application health check")
		crashDown    = flag.Duration("crash-down", time.Second, "crash workload: how long the killed server stays dead")
		crashWait    = flag.Duration("crash-wait", 2*time.Minute, "crash workload: how long to wait for a served op after the restart")
		outageCuts   = flag.String("outage-cuts", "5s,20s,45s", "outage workload: how long the path drops everything, comma separated")
		outageWait   = flag.Duration("outage-wait", 65*time.Second, "outage workload: how long to wait for a served op after the restore")
		disrupted    = flag.String("disrupt-impls", "", "crash and outage workloads: only these implementations (default: those of -impls; -quick: quicpool,raw)")
		bulkMiB      = flag.Int("bulk", 256, "bulk workload: MiB per transfer")
		bulkReps     = flag.Int("bulk-reps", 5, "bulk workload: transfers per implementation and stream count (the median is reported)")
		idle         = flag.Int("idle", 1024, "memory workload: idle streams per side")
		accessorTime = flag.Duration("accessor-time", time.Second, "accessor workload: how long the 64 goroutines call")
		wakeOps      = flag.Int("wake-ops", 200, "wake workload: waits measured per implementation")
		only         = flag.String("only", "", "run only these workloads, comma separated: "+strings.Join(workloads, ","))
		implFilter   = flag.String("impls", "", "run only these implementations, comma separated: quicpool,nodepass,vistone,raw")
		out          = flag.String("out", "results/latest.md", "the results file (-quick: results/quick.md); the SVG charts go next to it")
		memRole      = flag.String("memchild", "", "internal: run one side of the memory workload (server or client)")
		memImpl      = flag.String("memimpl", "", "internal: the memory child's implementation")
		memAddr      = flag.String("memaddr", "", "internal: the memory child's address")
		memProfile   = flag.Bool("memprofile", false, "internal: the memory child samples every allocation and reports the heap's parts")
		crashImpl    = flag.String("crashchild", "", "internal: run the crash workload's server of this implementation")
		crashAddr    = flag.String("crashaddr", "", "internal: the crash child's address")
		crashCert    = flag.String("crashcert", "", "internal: the crash child's certificate (PEM file)")
		crashKey     = flag.String("crashkey", "", "internal: the crash child's key (PEM file)")
		hostileArg   = flag.String("hostilechild", "", "internal: run the hostile workload's server, impl|addr|maxCap")
	)
	flag.Parse()
	if *hostileArg != "" {
		hostileChild(*hostileArg)
		return
	}
	if *memRole != "" {
		memChild(*memRole, *memImpl, *memAddr, *idle, *memProfile)
		return
	}
	if *crashImpl != "" {
		s, err := parseShapes(*shapes)
		if err != nil {
			fatal(err)
		}
		crashChild(*crashImpl, *crashAddr, *crashCert, *crashKey, s[0])
		return
	}
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *quick {
		quickDefault := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		quickDefault("shapes", func() { *shapes = "32/64" })
		quickDefault("workers", func() { *workers = "16" })
		quickDefault("duration", func() { *duration = time.Second })
		quickDefault("warmup", func() { *warmup = 300 * time.Millisecond })
		quickDefault("tunnel-reps", func() { *tunnelReps = 1 })
		quickDefault("fill-reps", func() { *fillReps = 3 })
		quickDefault("burst-reps", func() { *burstReps = 1 })
		quickDefault("quiet-tries", func() { *tries = 1 })
		quickDefault("refill-wait", func() { *refillWait = 5 * time.Second })
		quickDefault("recovery-down", func() { *down = 500 * time.Millisecond })
		quickDefault("recovery-wait", func() { *recWait = 3 * time.Second })
		quickDefault("health-check", func() { *health = false })
		quickDefault("crash-down", func() { *crashDown = 500 * time.Millisecond })
		quickDefault("crash-wait", func() { *crashWait = 10 * time.Second })
		quickDefault("outage-cuts", func() { *outageCuts = "2s" })
		quickDefault("outage-wait", func() { *outageWait = 10 * time.Second })
		quickDefault("disrupt-impls", func() {
			if !set["impls"] {
				*disrupted = "quicpool,raw"
			}
		})
		quickDefault("bulk", func() { *bulkMiB = 8 })
		quickDefault("bulk-reps", func() { *bulkReps = 1 })
		quickDefault("idle", func() { *idle = 128 })
		quickDefault("accessor-time", func() { *accessorTime = 300 * time.Millisecond })
		quickDefault("wake-ops", func() { *wakeOps = 30 })
		quickDefault("out", func() { *out = "results/quick.md" })
	}

	cfg := Config{
		Quick: *quick, Warmup: *warmup, Duration: *duration, TunnelReps: max(*tunnelReps, 1), FillReps: max(*fillReps, 1), BurstReps: max(*burstReps, 1), RefillWait: *refillWait,
		RecoveryDown: *down, RecoveryWait: *recWait, HealthCheck: *health,
		CrashDown: *crashDown, CrashWait: *crashWait, OutageWait: *outageWait,
		BulkBytes: int64(*bulkMiB) << 20, BulkReps: max(*bulkReps, 1), Idle: *idle,
		AccessorTime: *accessorTime, WakeOps: *wakeOps, Out: *out, Machine: machine(),
	}
	quietTries = max(*tries, 1)
	var err error
	if cfg.Shapes, err = parseShapes(*shapes); err != nil {
		fatal(err)
	}
	if cfg.Workers, err = parseInts(*workers); err != nil {
		fatal(fmt.Errorf("-workers: %w", err))
	}
	if cfg.Only, err = parseOnly(*only); err != nil {
		fatal(err)
	}
	if cfg.Impls, err = parseImpls(*implFilter); err != nil {
		fatal(err)
	}
	if cfg.Wan, err = wanConfig(*quick, set); err != nil {
		fatal(err)
	}
	if cfg.Scale, err = scaleConfig(*quick, set); err != nil {
		fatal(err)
	}
	cfg.Disrupted = cfg.Impls
	if *disrupted != "" {
		if cfg.Disrupted, err = parseImpls(*disrupted); err != nil {
			fatal(fmt.Errorf("-disrupt-impls: %w", err))
		}
	}
	cfg.Disrupted = rawClientOpens(cfg.Disrupted) // their ops write from the client first
	if cfg.OutageCuts, err = parseDurations(*outageCuts); err != nil {
		fatal(fmt.Errorf("-outage-cuts: %w", err))
	}

	start, built := time.Now(), versions() // the commit go run built, not the one at the end
	res := run(cfg)
	env := Env{
		Date:     start,
		Machine:  cfg.Machine,
		Command:  "cd bench && go run . " + strings.Join(os.Args[1:], " "),
		Versions: built,
		Elapsed:  time.Since(start),
	}
	env.Command = strings.TrimSpace(env.Command)

	dir := filepath.Dir(cfg.Out)
	prefix := ""
	if base := strings.TrimSuffix(filepath.Base(cfg.Out), ".md"); base != "latest" {
		prefix = base + "-"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fatal(err)
	}
	charts := headlineCharts(cfg, res)
	var names []string
	for name, svg := range charts {
		names = append(names, prefix+name)
		if err := os.WriteFile(filepath.Join(dir, prefix+name), []byte(svg), 0o644); err != nil {
			fatal(err)
		}
	}
	slices.Sort(names)
	md := report(env, cfg, res, names)
	fmt.Print(md)
	if err := os.WriteFile(cfg.Out, []byte(md), 0o644); err != nil {
		fatal(err)
	}
	fmt.Fprintf(os.Stderr, "wrote %s and %d charts in %s (%s)\n", cfg.Out, len(names), dir, time.Since(start).Round(time.Second))
}

// run runs the selected workloads on the selected implementations.
func run(cfg Config) Results {
	res := Results{Elsewhere: map[string]float64{}}
	small := cfg.Shapes[0]
	pooled := slices.DeleteFunc(slices.Clone(cfg.Impls), func(i Impl) bool { return !i.Pooled })
	step := func(name string, f func()) {
		if !slices.Contains(cfg.Only, name) {
			return
		}
		t, cpu := time.Now(), readCPU()
		f()
		settle()
		res.Elsewhere[name] = readCPU().elsewhere(cpu)
		logf("%s done in %s (%d goroutines left, others used %.1f%% of the CPUs)", name, time.Since(t).Round(time.Millisecond),
			runtime.NumGoroutine(), 100*res.Elsewhere[name])
	}
	step("tunnel", func() {
		impls := withRawClientOpens(cfg.Impls) // raw quic-go both ways round
		for _, s := range cfg.Shapes {
			for _, w := range cfg.Workers {
				runs := make([][]TunnelResult, len(impls))
				for rep := range cfg.TunnelReps { // the repetitions take turns across the implementations
					for i, impl := range impls {
						r, elsewhere, tries := measureQuietly(func() TunnelResult { return runTunnel(impl, s, w, cfg.Warmup, cfg.Duration) })
						r.Elsewhere, r.Tries = elsewhere, tries
						logf("tunnel %s %s %d workers, run %d: %.0f ops/s p50 %s p99 %s errors %d, others' CPU %.1f%% (try %d) %s",
							impl.Name, s, w, rep+1, r.OpsPerSec, dur(r.P50), dur(r.P99), r.Errors, 100*r.Elsewhere, r.Tries, r.Err)
						runs[i] = append(runs[i], r)
						settle()
					}
				}
				for i := range impls {
					res.Tunnel = append(res.Tunnel, medianTunnel(runs[i]))
				}
			}
		}
	})
	step("profile", func() {
		for _, impl := range cfg.Impls {
			if impl.Name != nameQuicpool && impl.Name != nameRaw {
				continue
			}
			r, _, _ := measureQuietly(func() ProfileResult { return runProfile(impl, small, 16, cfg.Warmup, cfg.Duration) })
			logf("profile %s: %.0f ops/s, %s sampled %s", impl.Name, r.Tunnel.OpsPerSec, dur(r.Sampled), r.Err)
			res.Profile = append(res.Profile, r)
			settle()
		}
	})
	step("wake", func() {
		s := Shape{MinCap: 4, MaxCap: 4, MinIvl: small.MinIvl, MaxIvl: small.MaxIvl, KeepAlive: small.KeepAlive}
		for _, impl := range pooled {
			r, _, _ := measureQuietly(func() WakeResult { return runWake(impl, s, cfg.WakeOps) })
			logf("wake %s: p50 %s p99 %s errors %d %s", impl.Name, dur(r.P50), dur(r.P99), r.Errors, r.Err)
			res.Wake = append(res.Wake, r)
			settle()
		}
	})
	step("burst", func() {
		runs := make([][]BurstResult, len(cfg.Impls))
		for range cfg.BurstReps { // the repetitions take turns across the implementations
			for i, impl := range cfg.Impls {
				r, _, _ := measureQuietly(func() BurstResult { return runBurst(impl, small, cfg.RefillWait) })
				logf("burst %s: served %s refilled %s (%v) errors %d, %d GCs %s", impl.Name, dur(r.Served), dur(r.Refilled), r.Refill, r.Errors, r.GCs, r.Err)
				runs[i] = append(runs[i], r)
				settle()
			}
		}
		for _, rs := range runs {
			res.Burst = append(res.Burst, medianBurst(rs))
		}
	})
	step("fill", func() {
		for _, s := range cfg.Shapes {
			runs := make([][]FillResult, len(pooled))
			for range cfg.FillReps { // the repetitions take turns across the implementations
				for i, impl := range pooled {
					r, _, _ := measureQuietly(func() FillResult { return runFill(impl, s) })
					logf("fill %s %s: %s %s", impl.Name, s, dur(r.Fill), r.Err)
					runs[i] = append(runs[i], r)
					settle()
				}
			}
			for _, rs := range runs {
				res.Fill = append(res.Fill, medianFill(rs))
			}
		}
	})
	step("recovery", func() {
		for _, health := range []bool{false, true} {
			if health && !cfg.HealthCheck {
				continue
			}
			for _, impl := range cfg.Impls {
				if health && !impl.Pooled {
					continue
				}
				r := runRecovery(impl, small, cfg.RecoveryDown, cfg.RecoveryWait, health)
				logf("recovery %s health=%v: ok %v after %s, errors %d, next %d/%d failed %s", impl.Name, health, r.OK, dur(r.Served), r.Errors, r.AfterErrors, r.After, r.Err)
				res.Recovery = append(res.Recovery, r)
				settle()
			}
		}
	})
	step("crash", func() {
		for _, impl := range cfg.Disrupted {
			r := runCrash(impl, small, cfg.CrashDown, cfg.CrashWait)
			logf("crash %s: ok %v after %s, failed %d, hung %d %s", impl.Name, r.OK, dur(r.Served), r.Failed, r.Hung, r.Err)
			res.Crash = append(res.Crash, r)
			settle()
		}
	})
	step("outage", func() {
		for _, cut := range cfg.OutageCuts {
			for _, impl := range cfg.Disrupted {
				r := runOutage(impl, small, cut, cfg.OutageWait)
				logf("outage %s %s: ok %v after %s, failed %d, hung %d; bulk moved again %v after %s %s %s", impl.Name, dur(cut),
					r.OK, dur(r.Served), r.Failed, r.Hung, r.BulkOK, dur(r.Bulk), r.BulkErr, r.Err)
				res.Outage = append(res.Outage, r)
				settle()
			}
		}
	})
	step("bulk", func() {
		for _, n := range []int{1, 8} {
			for _, r := range runBulk(rawClientOpens(cfg.Impls), small, n, cfg.BulkBytes, cfg.BulkReps) {
				logf("bulk %s %d streams: median %.0f MiB/s (%.0f..%.0f) errors %d %s", r.Impl, n, r.MiBps, r.MinMiB, r.MaxMiB, r.Errors, r.Err)
				res.Bulk = append(res.Bulk, r)
			}
			settle()
		}
	})
	step("memory", func() {
		for _, impl := range rawClientOpens(cfg.Impls) {
			r := runMemory(impl, cfg.Idle, false)
			if r.Err == "" { // the heap's parts, from a second, profiled pair that held as many idle streams
				p := runMemory(impl, cfg.Idle, true)
				if p.Server.Idle == r.Server.Idle {
					r.Server.Parts = p.Server.Parts
				}
				if p.Client.Idle == r.Client.Idle {
					r.Client.Parts = p.Client.Parts
				}
			}
			logf("memory %s: server %+v client %+v %s", impl.Name, r.Server, r.Client, r.Err)
			res.Memory = append(res.Memory, r)
		}
	})
	step("accessors", func() {
		for _, impl := range pooled {
			r, _, _ := measureQuietly(func() AccessorResult { return runAccessors(impl, small, 64, cfg.AccessorTime) })
			logf("accessors %s: %.0f calls/s %s", impl.Name, r.CallsPerSec, r.Err)
			res.Accessors = append(res.Accessors, r)
			settle()
		}
	})
	step("hostile", func() {
		h := hostileConfig(cfg.Quick)
		for _, impl := range pooled {
			res.Hostile = append(res.Hostile, runHostile(impl, h))
			settle()
		}
	})
	step("wan", func() { res.Wan = runWanWorkload(cfg) })
	step("scale", func() { res.Scale = runScaleWorkload(cfg) })
	return res
}

// settle gives closed pools a moment to wind down before the next measurement.
func settle() {
	time.Sleep(200 * time.Millisecond)
	runtime.GC()
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(2)
}

func parseShapes(s string) ([]Shape, error) {
	var shapes []Shape
	for _, f := range strings.Split(s, ",") {
		lo, hi, ok := strings.Cut(strings.TrimSpace(f), "/")
		minCap, err1 := strconv.Atoi(lo)
		maxCap, err2 := strconv.Atoi(hi)
		if !ok || err1 != nil || err2 != nil || minCap <= 0 || maxCap < minCap {
			return nil, fmt.Errorf("-shapes: %q is not minCap/maxCap", f)
		}
		shapes = append(shapes, Shape{MinCap: minCap, MaxCap: maxCap, MinIvl: 100 * time.Millisecond,
			MaxIvl: time.Second, KeepAlive: 30 * time.Second})
	}
	return shapes, nil
}

func parseInts(s string) ([]int, error) {
	var ns []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		ns = append(ns, n)
	}
	return ns, nil
}

func parseDurations(s string) ([]time.Duration, error) {
	var ds []time.Duration
	for _, f := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%q is not a positive duration", f)
		}
		ds = append(ds, d)
	}
	return ds, nil
}

func parseOnly(s string) ([]string, error) {
	if s == "" {
		return workloads, nil
	}
	var names []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if !slices.Contains(workloads, f) {
			return nil, fmt.Errorf("-only: unknown workload %q (want some of %s)", f, strings.Join(workloads, ","))
		}
		names = append(names, f)
	}
	return names, nil
}

func parseImpls(s string) ([]Impl, error) {
	all := impls()
	if s == "" {
		return all, nil
	}
	var picked []Impl
	for _, f := range strings.Split(s, ",") {
		f = strings.ToLower(strings.TrimSpace(f))
		n := len(picked)
		for _, impl := range all {
			if strings.HasPrefix(strings.ToLower(impl.Name), f) {
				picked = append(picked, impl)
			}
		}
		if len(picked) == n {
			return nil, fmt.Errorf("-impls: unknown implementation %q (want some of quicpool,nodepass,vistone,raw)", f)
		}
	}
	return picked, nil
}

// machine describes this machine: CPUs, OS/architecture, Go version, CPU model.
func machine() string {
	m := fmt.Sprintf("%d CPUs, %s/%s, %s", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				return m + ", " + strings.TrimSpace(v)
			}
		}
	}
	return m
}

// versions lists the modules under test as built, and quicpool's commit when git knows it.
func versions() string {
	var vs []string
	if out, err := exec.Command("git", "-C", "..", "rev-parse", "--short", "HEAD").Output(); err == nil {
		state := "no uncommitted changes to the library"
		// The library's code, that is: the bench and test files do not change what is measured.
		dirty, err := exec.Command("git", "-C", "..", "status", "--porcelain", "--", ".", ":!bench", ":!*_test.go").Output()
		if err != nil || len(strings.TrimSpace(string(dirty))) > 0 {
			state = "WITH UNCOMMITTED CHANGES to the library"
		}
		vs = append(vs, "quicpool at commit "+strings.TrimSpace(string(out))+" ("+state+")")
	} else {
		vs = append(vs, "quicpool (this checkout)")
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, d := range info.Deps {
			switch d.Path {
			case "github.com/NodePassProject/quic", "github.com/vistone/quic", "github.com/quic-go/quic-go", "github.com/anthdm/hollywood":
				vs = append(vs, d.Path+" "+d.Version)
			}
		}
	}
	return strings.Join(vs, ", ") + " (one quic-go for all: Go's module selection picks the highest version any of them requires)"
}
