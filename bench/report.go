package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Results holds every measurement of one run.
type Results struct {
	Tunnel    []TunnelResult
	Burst     []BurstResult
	Fill      []FillResult
	Recovery  []RecoveryResult
	Crash     []DisruptionResult
	Outage    []DisruptionResult
	Bulk      []BulkResult
	Memory    []MemoryResult
	Accessors []AccessorResult
	Hostile   []HostileResult
	Wan       []WanResult
	Scale     []ScaleResult
	Wake      []WakeResult
	Profile   []ProfileResult
	// Elsewhere is, per workload run, the share of the machine's CPUs that other processes used
	// meanwhile (the memory and crash workloads' own child processes count as others).
	Elsewhere map[string]float64
}

// Env describes the run: when, where, how.
type Env struct {
	Date     time.Time
	Machine  string
	Command  string
	Versions string
	Elapsed  time.Duration
}

// report renders the results as Markdown: the header, the targets checklist, then a table per
// workload with a ratio column against NodePass v1.1.1, then notes on method.
func report(env Env, cfg Config, res Results, charts []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# quicpool side by side: NodePass v1.1.1, vistone v1.0.0, raw quic-go\n\n")
	fmt.Fprintf(&b, "- Date: %s (the run took %s)\n", env.Date.UTC().Format("2006-01-02 15:04 MST"), env.Elapsed.Round(time.Second))
	fmt.Fprintf(&b, "- Machine: %s\n", env.Machine)
	fmt.Fprintf(&b, "- Command: `%s`\n", env.Command)
	fmt.Fprintf(&b, "- Versions: %s\n", env.Versions)
	fmt.Fprintf(&b, "- Shapes: %s; intervals %v..%v, keep-alive %v, Get timeout %v; all traffic on 127.0.0.1; "+
		"both sides of every pair run in this one process (memory: one process per side; crash: the server in a child process)\n\n",
		shapeList(cfg.Shapes), cfg.Shapes[0].MinIvl, cfg.Shapes[0].MaxIvl, cfg.Shapes[0].KeepAlive, opTimeout)

	if len(res.Elsewhere) > 0 {
		var parts []string
		for _, w := range workloads {
			if v, ok := res.Elsewhere[w]; ok {
				parts = append(parts, fmt.Sprintf("%s %.1f%%", w, 100*v))
			}
		}
		fmt.Fprintf(&b, "- CPU used by other processes during each workload, retries included (share of all CPUs; memory "+
			"and crash run child processes of this program, which count as others): %s. %s\n\n", strings.Join(parts, ", "), retryNote())
	}
	text, checks := checklist(cfg, res)
	b.WriteString(text)
	text, more := perfChecklist(cfg, res)
	b.WriteString(text)
	b.WriteString(missReasons(cfg, res, append(checks, more...)))
	for _, c := range charts {
		fmt.Fprintf(&b, "![%s](%s)\n", strings.TrimSuffix(c, ".svg"), c)
	}
	if len(charts) > 0 {
		b.WriteString("\n")
	}
	b.WriteString(tunnelTables(cfg, res.Tunnel))
	b.WriteString(wakeTable(res.Wake))
	b.WriteString(profileTable(cfg, res.Profile))
	b.WriteString(burstTable(cfg, res.Burst))
	b.WriteString(fillTable(res.Fill))
	b.WriteString(recoveryTable(cfg, res.Recovery))
	b.WriteString(crashTable(cfg, res.Crash))
	b.WriteString(outageTable(cfg, res.Outage))
	b.WriteString(bulkTable(res.Bulk))
	b.WriteString(memoryTable(res.Memory))
	b.WriteString(accessorTable(res.Accessors))
	b.WriteString(hostileTable(cfg, res.Hostile))
	b.WriteString(wanTable(cfg, res.Wan))
	b.WriteString(scaleTable(cfg, res.Scale))
	b.WriteString(readingNotes)
	return b.String()
}

// readingNotes says what the setup favours and disfavours; it holds for every run.
const readingNotes = `## Reading these numbers

- Both pools of a pair, and every QUIC packet between them, share this machine's CPUs in one process. A loopback
  round trip costs tens of microseconds, so the latency a pool hides (opening a stream and exchanging its ID) is
  small here, while the work a pool does per op (the take, and opening the replacement stream) is CPU that raw
  quic-go spends too. See the wide-area workload for what a round trip of 50ms changes.
- *Raw quic-go* is the leanest op without a pool: the server opens a fresh stream on the client's connection
  (OpenStreamSync), the client accepts it (AcceptStream); no handshake, no ID on the wire, and no extra round trip
  on a real network either, since the stream arrives with its first data. Its client must connect first and keep
  the connection up. *Raw quic-go (client opens)* is the pools' way without a pool: the client opens a stream, writes
  0x00 and reads a 4-byte ID, asked by the server by a function call in this process (a real tunnel would send
  that request over its control channel); over a real network it pays that extra round trip. The bulk, crash,
  outage and memory workloads use it, as their streams carry the client's data first.
- NodePass's and vistone's OutgoingGet polls every 50ms for an ID that has not arrived yet, and their clients
  refill only once per interval (100ms here): their ops/s is bound by the refill tick, not by QUIC. Their streams'
  Close closes only the send side, so every op here reads the peer to EOF before closing, as a tunnel does;
  callers that do not would stall those pools.
- quicpool answers Get and the state accessors with messages between actors (the caller, the coordinator, the
  shard), which costs tens of microseconds per call on this machine; NodePass's accessors are an atomic load.
- All four use the same quic-go version (see Versions), the same TLS 1.3 certificate and ALPN, keep-alive 30s.
`

func shapeList(shapes []Shape) string {
	var s []string
	for _, sh := range shapes {
		s = append(s, "minCap/maxCap "+sh.String())
	}
	return strings.Join(s, " and ")
}

// ---------------------------------------------------------------------------------------------
// Targets

type check struct {
	target, measured string
	pass, measuredOK bool
}

// checklist compares the measured numbers with the targets of issue 5. A target whose numbers
// were not measured in this run says so.
func checklist(cfg Config, res Results) (string, []check) {
	var checks []check
	add := func(target string, ok bool, pass bool, measured string, args ...any) {
		checks = append(checks, check{target: target, measured: fmt.Sprintf(measured, args...), pass: pass, measuredOK: ok})
	}
	small := cfg.Shapes[0]
	qp, np, raw := findTunnel(res.Tunnel, nameQuicpool, small, 16), findTunnel(res.Tunnel, nameNodePass, small, 16), findTunnel(res.Tunnel, nameRaw, small, 16)
	tun := qp != nil && np != nil && qp.Ops > 0 && np.Ops > 0
	if tun {
		add("Tunnel, 16 workers, "+small.String()+": ops/s >= 10x NodePass", true, qp.OpsPerSec >= 10*np.OpsPerSec,
			"%.0f vs %.0f ops/s (%s)", qp.OpsPerSec, np.OpsPerSec, ratio(qp.OpsPerSec, np.OpsPerSec))
		add("Tunnel, 16 workers: p99 <= 1/10 of NodePass's", true, qp.P99*10 <= np.P99,
			"%s vs %s (%s)", dur(qp.P99), dur(np.P99), ratio(float64(qp.P99), float64(np.P99)))
	} else {
		add("Tunnel, 16 workers, "+small.String()+": ops/s >= 10x NodePass", false, false, "not measured")
		add("Tunnel, 16 workers: p99 <= 1/10 of NodePass's", false, false, "not measured")
	}
	if qp != nil && raw != nil && qp.Ops > 0 && raw.Ops > 0 {
		add("Tunnel, 16 workers: ops/s >= 0.8x raw quic-go", true, qp.OpsPerSec >= 0.8*raw.OpsPerSec,
			"%.0f vs %.0f ops/s (%s)", qp.OpsPerSec, raw.OpsPerSec, ratio(qp.OpsPerSec, raw.OpsPerSec))
		add("Tunnel, 16 workers: p50 below raw quic-go's", true, qp.P50 < raw.P50,
			"%s vs %s", dur(qp.P50), dur(raw.P50))
	} else {
		add("Tunnel, 16 workers: ops/s >= 0.8x raw quic-go", false, false, "not measured")
		add("Tunnel, 16 workers: p50 below raw quic-go's", false, false, "not measured")
	}
	if w := findWake(res.Wake, nameQuicpool); w != nil && w.Ops > 0 {
		add("Waiting OutgoingGet wakes within 1 ms (p99)", true, w.P99 <= time.Millisecond,
			"p50 %s, p99 %s, max %s over %d ops (one loopback QUIC hop included)", dur(w.P50), dur(w.P99), dur(w.Max), w.Ops)
	} else {
		add("Waiting OutgoingGet wakes within 1 ms (p99)", false, false, "not measured")
	}
	qb, rb := findBurst(res.Burst, nameQuicpool), findBurst(res.Burst, nameRaw)
	if qb != nil && rb != nil && qb.Err == "" && rb.Err == "" && qb.Refill {
		add(fmt.Sprintf("Burst of %d: back to capacity within 2x raw quic-go's time to open as many streams", qb.Takes), true,
			qb.Refilled <= 2*rb.Served, "%s vs 2 x %s", dur(qb.Refilled), dur(rb.Served))
	} else {
		add("Burst: back to capacity within 2x raw quic-go's stream-open time", false, false, "not measured")
	}
	if r := findRecovery(res.Recovery, nameQuicpool, false); r != nil && r.Err == "" {
		add("Recovery: a stream served within 1s of the server's return", true, r.OK && r.Served < time.Second,
			"%s", recoveryText(cfg, *r))
	} else {
		add("Recovery: a stream served within 1s of the server's return", false, false, "not measured")
	}
	for _, n := range []int{1, 8} {
		q, rw := findBulk(res.Bulk, nameQuicpool, n), findBulk(res.Bulk, nameRawClientOpens, n)
		t := fmt.Sprintf("Bulk, %d stream(s): >= 95%% of raw quic-go MiB/s", n)
		if q != nil && rw != nil && q.MiBps > 0 && rw.MiBps > 0 {
			add(t, true, q.MiBps >= 0.95*rw.MiBps, "%.0f vs %.0f MiB/s (%.0f%%)", q.MiBps, rw.MiBps, 100*q.MiBps/rw.MiBps)
		} else {
			add(t, false, false, "not measured")
		}
	}
	qm, nm := findMemory(res.Memory, nameQuicpool), findMemory(res.Memory, nameNodePass)
	for _, side := range []string{"server", "client"} {
		t := "Memory per idle stream, " + side + " side: no more than NodePass's"
		if qm == nil || nm == nil {
			add(t, false, false, "not measured")
			continue
		}
		q, n := qm.side(side), nm.side(side)
		if q.Idle == 0 || n.Idle == 0 {
			add(t, false, false, "not measured (%s)", firstNonEmpty(q.Err, n.Err, "no idle streams"))
			continue
		}
		add(t, true, q.HeapPer() <= n.HeapPer(), "%s vs %s per stream; goroutines %.3f vs %.3f per stream (%d and %d idle)",
			bytes(q.HeapPer()), bytes(n.HeapPer()), q.GoroutinesPer(), n.GoroutinesPer(), q.Idle, n.Idle)
	}

	return checkTable("Targets (issue 5), against this run's numbers", checks), checks
}

// checkTable renders checks as a table of PASS, MISS and n/a (not measured) rows.
func checkTable(title string, checks []check) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## %s\n\n", title)
	b.WriteString("| | Target | quicpool measured |\n|---|---|---|\n")
	for _, c := range checks {
		fmt.Fprintf(&b, "| **%s** | %s | %s |\n", c.status(), c.target, c.measured)
	}
	b.WriteString("\n")
	return b.String()
}

func (c check) status() string {
	switch {
	case !c.measuredOK:
		return "n/a"
	case c.pass:
		return "PASS"
	}
	return "MISS"
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// ---------------------------------------------------------------------------------------------
// Tables

func tunnelTables(cfg Config, rs []TunnelResult) string {
	if len(rs) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("## 1. Tunnel round trip\n\n")
	fmt.Fprintf(&b, "%d runs of %s (after %s unmeasured) per configuration, taking turns across the implementations; "+
		"each row is the run with the median ops/s. ", cfg.TunnelReps, dur(cfg.Duration), dur(cfg.Warmup))
	fmt.Fprintf(&b, "Each op: server `IncomingGet`, client `OutgoingGet(id)`, 1 KiB each way, each side half-closes, "+
		"reads the peer to EOF, closes. Ratios are against NodePass v1.1.1 at the same shape and worker count "+
		"(ops/s: higher is better; p99: lower is better). *Gets p99* is IncomingGet + OutgoingGet alone (raw quic-go, "+
		"server opens: the open alone, the client's wait for the stream falls in the exchange). *CPU/op*: this process's "+
		"CPU time (both sides, all threads) in the window divided by its ops. *Packets/op*: QUIC packets both sides "+
		"sent in the window divided by its ops (quicpool and raw quic-go, whose connections the bench can read). *Others' CPU*: "+
		"the share of the machine's CPUs that other processes used during the run (a busy machine lowers every number). %s\n\n",
		retryNote())
	var shapes []Shape
	for _, r := range rs {
		if !containsShape(shapes, r.Shape) {
			shapes = append(shapes, r.Shape)
		}
	}
	for _, s := range shapes {
		fmt.Fprintf(&b, "### minCap/maxCap %s\n\n", s)
		b.WriteString("| Workers | Implementation | ops/s | ops/s of all runs | vs NodePass | p50 | p99 | p99 vs NodePass | Gets p99 | CPU/op | Packets/op | Errors | Others' CPU |\n")
		b.WriteString("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, r := range rs {
			if r.Shape != s {
				continue
			}
			if r.Err != "" {
				fmt.Fprintf(&b, "| %d | %s | failed: %s | | | | | | | | | | |\n", r.Workers, r.Impl, cell(r.Err))
				continue
			}
			np := findTunnel(rs, nameNodePass, s, r.Workers)
			var npOps, npP99 float64
			if np != nil {
				npOps, npP99 = np.OpsPerSec, float64(np.P99)
			}
			spread := ""
			if r.Runs > 1 {
				spread = fmt.Sprintf("%.0f..%.0f", r.MinOps, r.MaxOps)
			}
			packets := ""
			if r.Packets > 0 {
				packets = fmt.Sprintf("%.2f", r.Packets)
			}
			fmt.Fprintf(&b, "| %d | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %d | %.1f%% |\n", r.Workers, r.Impl, r.OpsPerSec,
				spread, ratio(r.OpsPerSec, npOps), dur(r.P50), dur(r.P99), ratio(float64(r.P99), npP99), dur(r.GetP99), dur(r.CPUPerOp),
				packets, r.Errors, 100*r.Elsewhere)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func wakeTable(rs []WakeResult) string {
	if len(rs) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("## 1b. Waking a waiting OutgoingGet\n\n")
	b.WriteString("The client's `OutgoingGet(id)` is already waiting when the ID arrives: a plain quic-go server holds each " +
		"stream the client pool opens and writes a fresh ID on it 2ms after the call started. Time from that write until " +
		"OutgoingGet returns (one loopback QUIC hop included). Ratio: p50 against NodePass (lower is better).\n\n")
	b.WriteString("| Implementation | Ops | p50 | vs NodePass | p99 | max | Errors |\n|---|---:|---:|---:|---:|---:|---:|\n")
	np := findWake(rs, nameNodePass)
	for _, r := range rs {
		if r.Err != "" && r.Ops == 0 {
			fmt.Fprintf(&b, "| %s | failed: %s | | | | | |\n", r.Impl, cell(r.Err))
			continue
		}
		var npP50 float64
		if np != nil {
			npP50 = float64(np.P50)
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %d |\n", r.Impl, r.Ops, dur(r.P50), ratio(float64(r.P50), npP50), dur(r.P99), dur(r.Max), r.Errors)
	}
	b.WriteString("\n")
	return b.String()
}

func burstTable(cfg Config, rs []BurstResult) string {
	if len(rs) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## 2. Burst\n\nA full %s pool, then 2 x maxCap takes at once (each: IncomingGet + OutgoingGet, released "+
		"at once). *All served*: from the burst's start until the last take was served. *Back at capacity*: from the "+
		"burst's start until both sides hold as many idle streams as before it, watched every millisecond from the moment the "+
		"last take is served while the exchanges on the taken streams still run (raw quic-go keeps none: its *all served* "+
		"is the time to open that many fresh streams). A garbage collection runs just before each burst, as testing.B runs "+
		"one before a benchmark, so that a burst does not pay for collecting what its setup allocated (a pool's fill). "+
		"Each implementation runs %d times, taking turns; the run with the "+
		"median time back at capacity (raw quic-go: all served) is shown, with the failed takes of all runs, and every "+
		"run's time with the garbage collections that ran during it (this process's, so the other side's too). Ratios "+
		"against NodePass (lower is better).\n\n", cfg.Shapes[0], cfg.BurstReps)
	b.WriteString("| Implementation | Takes | All served | vs NodePass | Back at capacity | vs NodePass | Errors (all runs) | Every run (collections) |\n|---|---:|---:|---:|---:|---:|---:|---|\n")
	np := findBurst(rs, nameNodePass)
	for _, r := range rs {
		if r.Err != "" {
			fmt.Fprintf(&b, "| %s | failed: %s | | | | | | |\n", r.Impl, cell(r.Err))
			continue
		}
		var npServed, npRefill float64
		if np != nil {
			npServed = float64(np.Served)
			if np.Refill {
				npRefill = float64(np.Refilled)
			}
		}
		refill, refillRatio := "n/a", ""
		if r.Impl != nameRaw {
			refill = "not within " + dur(cfg.RefillWait)
			if r.Refill {
				refill, refillRatio = dur(r.Refilled), ratio(float64(r.Refilled), npRefill)
			}
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %d | %s |\n", r.Impl, r.Takes, dur(r.Served), ratio(float64(r.Served), npServed),
			refill, refillRatio, r.Errors, burstRuns(r.All))
	}
	b.WriteString("\n")
	return b.String()
}

// burstRuns lists every run's time and, in brackets, the garbage collections during it.
func burstRuns(runs []BurstRun) string {
	var parts []string
	for _, r := range runs {
		t := "none"
		if r.back() {
			t = dur(r.Time)
		}
		parts = append(parts, fmt.Sprintf("%s (%d)", t, r.GCs))
	}
	return strings.Join(parts, ", ")
}

func fillTable(rs []FillResult) string {
	if len(rs) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("## 3. Fill\n\nFrom the client pool's start (the server has been listening for 100ms) until both sides report " +
		"minCap idle streams, as each library counts them (NodePass and vistone count the control stream, quicpool does " +
		"not). Each implementation and shape runs several times, the implementations taking turns; the median is " +
		"reported, with the fastest and slowest run. Ratio of medians against NodePass (lower is better).\n\n")
	b.WriteString("| minCap/maxCap | Implementation | Time to minCap idle (median) | Fastest – slowest | Runs | vs NodePass |\n|---|---|---:|---:|---:|---:|\n")
	for _, r := range rs {
		runs := fmt.Sprint(r.Runs)
		if r.Failed > 0 {
			runs = fmt.Sprintf("%d (%d failed: %s)", r.Runs, r.Failed, cell(r.Err))
		}
		if r.Runs == 0 {
			fmt.Fprintf(&b, "| %s | %s | failed | | %s | |\n", r.Shape, r.Impl, runs)
			continue
		}
		var npFill float64
		for _, n := range rs {
			if n.Impl == nameNodePass && n.Shape == r.Shape && n.Runs > 0 {
				npFill = float64(n.Fill)
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s – %s | %s | %s |\n", r.Shape, r.Impl, dur(r.Fill), dur(r.Min), dur(r.Max), runs,
			ratio(float64(r.Fill), npFill))
	}
	b.WriteString("\n")
	return b.String()
}

func recoveryText(cfg Config, r RecoveryResult) string {
	if !r.OK {
		return fmt.Sprintf("not served within %s of the server's return (%d failed ops)", dur(cfg.RecoveryWait), r.Errors)
	}
	return fmt.Sprintf("served %s after the server's return, %d failed ops before, %d of the next %d failed",
		dur(r.Served), r.Errors, r.AfterErrors, r.After)
}

func recoveryTable(cfg Config, rs []RecoveryResult) string {
	if len(rs) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## 4. Recovery\n\nA full %s pair; the server pool is closed, stays down %s, and a new server pool "+
		"starts on the same port. From that moment tunnel ops run back to back (Gets bounded by %s) until one succeeds, "+
		"then 20 more. *On its own*: the library is left to heal by itself. *Health check*: every failed op calls the "+
		"client's `AddError`, and the client is flushed when `ErrorCount() > Active()/2`, as NodePass's application does. "+
		"Raw quic-go's client redials as soon as its connection dies, each dial bounded by "+dur(rawDialTimeout)+". "+
		"*Failed ops before*: failed ops from the server's return until the first success. "+
		"Ratio against NodePass in the same mode (lower is better).\n\n",
		cfg.Shapes[0], dur(cfg.RecoveryDown), dur(recoveryGet))
	b.WriteString("| Implementation | Mode | Served after | vs NodePass | Failed ops before | Failed of the next 20 |\n|---|---|---:|---:|---:|---:|\n")
	for _, r := range rs {
		np := findRecovery(rs, nameNodePass, r.HealthCheck)
		mode := "on its own"
		if r.HealthCheck {
			mode = "health check"
		}
		if r.Err != "" {
			fmt.Fprintf(&b, "| %s | %s | failed: %s | | | |\n", r.Impl, mode, cell(r.Err))
			continue
		}
		var npServed float64
		if np != nil && np.OK {
			npServed = float64(np.Served)
		}
		if !r.OK {
			fmt.Fprintf(&b, "| %s | %s | not within %s | | %d | |\n", r.Impl, mode, dur(cfg.RecoveryWait), r.Errors)
			continue
		}
		rt := ratio(float64(r.Served), npServed)
		if np != nil && np.Err == "" && !np.OK {
			rt = "NodePass: not within " + dur(cfg.RecoveryWait)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %d | %d |\n", r.Impl, mode, dur(r.Served), rt, r.Errors, r.AfterErrors)
	}
	b.WriteString("\n")
	return b.String()
}

// disruptionNote says how the ops of the crash and outage workloads are run and counted.
func disruptionNote() string {
	return fmt.Sprintf("Ops run back to back from the disruption on, each bounded by %s as a whole; *Failed*: ops that failed "+
		"within their bound, from the disruption until the first success; *Hung*: ops that had not returned %s after their "+
		"bound (left running). Raw quic-go redials when its connection is closed or when a stream open on it fails.",
		dur(disruptOp), dur(hangGrace))
}

func crashTable(cfg Config, rs []DisruptionResult) string {
	if len(rs) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## 4b. Server crash\n\nThe server runs in a child process that takes every stream with `IncomingGet` and "+
		"echoes it; the %s client pool, in this process, runs ops: `IncomingGet` on the client (any idle stream; raw "+
		"quic-go: a fresh stream), 1 KiB written, half-close, the echo read to EOF. Once an op works and the client holds "+
		"minCap idle streams, the child is killed with SIGKILL (no CONNECTION_CLOSE, nothing tells the client) and started "+
		"again %s later on the same port with the same certificate. *Served after restart*: from the new child's "+
		"\"listening\" line until an op succeeded, waiting at most %s. quicpool's server derives its stateless reset key "+
		"from its certificate, so the restarted server resets connections of the killed one; the others run quic-go "+
		"without a reset key, so their clients learn of the crash only when a stream or the idle timeout (3 x keep-alive) "+
		"fails. %s Ratio against NodePass (lower is better).\n\n",
		cfg.Shapes[0], dur(cfg.CrashDown), dur(cfg.CrashWait), disruptionNote())
	b.WriteString("| Implementation | Served after restart | vs NodePass | Failed ops | Hung ops |\n|---|---:|---:|---:|---:|\n")
	np := findDisruption(rs, nameNodePass, 0)
	for _, r := range rs {
		if r.Err != "" {
			fmt.Fprintf(&b, "| %s | failed: %s | | | |\n", r.Impl, cell(r.Err))
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %d |\n", r.Impl, servedText(r, cfg.CrashWait), disruptionRatio(r, np, cfg.CrashWait),
			r.Failed, r.Hung)
	}
	b.WriteString("\n")
	return b.String()
}

func outageTable(cfg Config, rs []DisruptionResult) string {
	if len(rs) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## 4c. Network outage\n\nA full %s pair whose client reaches the server through a UDP relay in this "+
		"process (one upstream socket per client address, as a NAT). A bulk transfer runs on one stream (the client writes "+
		"as fast as it can, the server reads); then the relay drops every datagram, both ways, for the cut, and forwards "+
		"again. Tunnel ops (server `IncomingGet`, client `OutgoingGet(id)`, 1 KiB each way) run from the cut on. *Served "+
		"after restore*: from the restore until a tunnel op succeeded; *Bulk moved again*: from the restore until the "+
		"server read data of the bulk stream again; both waiting at most %s. Keep-alive %s, idle timeout 3 x keep-alive, "+
		"so no cut here outlives a connection by itself. %s Ratio against NodePass at the same cut (lower is better).\n\n",
		cfg.Shapes[0], dur(cfg.OutageWait), dur(cfg.Shapes[0].KeepAlive), disruptionNote())
	b.WriteString("| Cut | Implementation | Served after restore | vs NodePass | Failed ops | Hung ops | Bulk moved again |\n" +
		"|---:|---|---:|---:|---:|---:|---|\n")
	for _, r := range rs {
		if r.Err != "" {
			fmt.Fprintf(&b, "| %s | %s | failed: %s | | | | |\n", dur(r.Down), r.Impl, cell(r.Err))
			continue
		}
		np := findDisruption(rs, nameNodePass, r.Down)
		bulk := "not within " + dur(cfg.OutageWait)
		switch {
		case r.BulkOK:
			bulk = dur(r.Bulk)
		case r.BulkErr != "":
			bulk = "stream failed: " + cell(r.BulkErr)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %d | %d | %s |\n", dur(r.Down), r.Impl, servedText(r, cfg.OutageWait),
			disruptionRatio(r, np, cfg.OutageWait), r.Failed, r.Hung, bulk)
	}
	b.WriteString("\n")
	return b.String()
}

func servedText(r DisruptionResult, wait time.Duration) string {
	if !r.OK {
		return "not within " + dur(wait)
	}
	return dur(r.Served)
}

// disruptionRatio is r's time to a served op against NodePass's, or says NodePass was not served.
func disruptionRatio(r DisruptionResult, np *DisruptionResult, wait time.Duration) string {
	switch {
	case !r.OK || np == nil || np.Err != "":
		return ""
	case !np.OK:
		return "NodePass: not within " + dur(wait)
	}
	return ratio(float64(r.Served), float64(np.Served))
}

func bulkTable(rs []BulkResult) string {
	if len(rs) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("## 5. Bulk\n\nThe client writes the total to the server over 1 or 8 streams taken from the pool (raw quic-go: " +
		"fresh streams on its own connection, same connection settings); the time runs until the server has read every " +
		"stream to EOF. One pair per implementation, one untimed warm-up transfer each, then the timed transfers take " +
		"turns across the implementations; the median is reported. Every implementation moves the bytes on a plain " +
		"quic-go stream, so differences here are mostly the machine's noise: see the spread. Ratios against NodePass " +
		"and against raw quic-go (higher is better).\n\n")
	b.WriteString("| Streams | Implementation | Total | MiB/s | MiB/s of all runs | vs NodePass | vs raw quic-go | Errors |\n|---:|---|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rs {
		if r.MiBps == 0 {
			fmt.Fprintf(&b, "| %d | %s | %s | failed: %s | | | | %d |\n", r.Streams, r.Impl, bytes(float64(r.Bytes)), cell(r.Err), r.Errors)
			continue
		}
		var npRate, rawRate float64
		if np := findBulk(rs, nameNodePass, r.Streams); np != nil {
			npRate = np.MiBps
		}
		if rw := findBulk(rs, nameRawClientOpens, r.Streams); rw != nil {
			rawRate = rw.MiBps
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %.0f | %.0f..%.0f | %s | %s | %d |\n", r.Streams, r.Impl, bytes(float64(r.Bytes)), r.MiBps,
			r.MinMiB, r.MaxMiB, ratio(r.MiBps, npRate), ratio(r.MiBps, rawRate), r.Errors)
	}
	b.WriteString("\n")
	return b.String()
}

func memoryTable(rs []MemoryResult) string {
	if len(rs) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## 6. Memory per idle stream\n\nEach side in a process of its own, pool shape n/n with n = %d: live heap "+
		"(runtime.MemStats.HeapAlloc after two GCs) and goroutines over the process's baseline before the pool was created, "+
		"divided by the idle streams the pool reports (a side that stops short of n is measured where it stopped: vistone's "+
		"server files every stream in its first shard, whose ID channel holds 128; raw quic-go: n streams opened and "+
		"held, quic-go's own cost). quicpool and vistone use ceil(n/128) QUIC connections (at most 64), NodePass one. Ratio of heap per stream against NodePass (lower is better).\n\n", rs[0].N)
	b.WriteString("| Implementation | Side | Idle streams | Heap | Heap per stream | vs NodePass | Goroutines | Goroutines per stream |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|\n")
	np := findMemory(rs, nameNodePass)
	for _, r := range rs {
		for _, side := range []string{"server", "client"} {
			m, n := r.side(side), MemSide{}
			if np != nil {
				n = np.side(side)
			}
			if r.Err != "" || m.Err != "" {
				fmt.Fprintf(&b, "| %s | %s | failed: %s | | | | | |\n", r.Impl, side, cell(firstNonEmpty(r.Err, m.Err)))
				continue
			}
			fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s | %d | %.3f |\n", r.Impl, side, m.Idle, bytes(float64(m.Heap)),
				bytes(m.HeapPer()), ratio(m.HeapPer(), n.HeapPer()), m.Goroutines, m.GoroutinesPer())
		}
	}
	b.WriteString("\n")
	b.WriteString(heapPartsTable(rs))
	return b.String()
}

// heapPartsTable shows what each side's heap over its baseline is made of (heapparts.go).
func heapPartsTable(rs []MemoryResult) string {
	type column struct {
		name  string
		parts map[string]int64
	}
	var cols []column
	for _, r := range rs {
		for _, side := range []string{"server", "client"} {
			if m := r.side(side); r.Err == "" && m.Err == "" && m.Parts != nil {
				cols = append(cols, column{r.Impl + " " + side, m.Parts})
			}
		}
	}
	if len(cols) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("What each side's heap over its baseline is made of, from a second pair of processes that sample every " +
		"allocation and take a heap profile at the baseline and at the measurement (the heap above comes from the first " +
		"pair, without the profiler): each live allocation counts for the innermost frame of its stack that belongs " +
		"to a known package (an allocation in the runtime or the standard library counts for the package that called " +
		"it); quic-go's are split into those made for a stream (a quic-go function on the stack that opens, accepts or " +
		"feeds one) and the rest: the connections' own state, their crypto streams and stream maps included. Each " +
		"column's idle streams are those of the table above. The parts add up to about the heap above: they are another " +
		"run's, and a profile is as of the last garbage collection.\n\n| Part |")
	for _, c := range cols {
		fmt.Fprintf(&b, " %s |", c.name)
	}
	b.WriteString("\n|---|" + strings.Repeat("---:|", len(cols)) + "\n")
	for _, part := range heapParts {
		if !slices.ContainsFunc(cols, func(c column) bool { return c.parts[part] != 0 }) {
			continue
		}
		fmt.Fprintf(&b, "| %s |", part)
		for _, c := range cols {
			fmt.Fprintf(&b, " %s |", kib(c.parts[part]))
		}
		b.WriteString("\n")
	}
	b.WriteString("| all parts |")
	for _, c := range cols {
		fmt.Fprintf(&b, " %s |", kib(sum(c.parts)))
	}
	b.WriteString("\n\n")
	return b.String()
}

// kib formats a byte count, which may be negative, in KiB.
func kib(v int64) string {
	if v > -10<<10 && v < 10<<10 {
		return fmt.Sprintf("%.1f KiB", float64(v)/(1<<10))
	}
	return fmt.Sprintf("%.0f KiB", float64(v)/(1<<10))
}

func accessorTable(rs []AccessorResult) string {
	if len(rs) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("## 7. State accessors\n\n`Active()` and `Capacity()` called alternately on the client pool from 64 goroutines. " +
		"NodePass and vistone answer with an atomic load or a channel length; quicpool sends a message to its coordinator " +
		"actor and waits for the reply, which costs far more per call. Ratio against NodePass (higher is better).\n\n")
	b.WriteString("| Implementation | Goroutines | Calls/s | vs NodePass |\n|---|---:|---:|---:|\n")
	var np float64
	for _, r := range rs {
		if r.Impl == nameNodePass {
			np = r.CallsPerSec
		}
	}
	for _, r := range rs {
		if r.Err != "" {
			fmt.Fprintf(&b, "| %s | %d | failed: %s | |\n", r.Impl, r.Goroutines, cell(r.Err))
			continue
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s |\n", r.Impl, r.Goroutines, count(r.CallsPerSec), ratio(r.CallsPerSec, np))
	}
	b.WriteString("\n")
	return b.String()
}

// ---------------------------------------------------------------------------------------------
// Lookups and formatting

func containsShape(shapes []Shape, s Shape) bool {
	for _, x := range shapes {
		if x == s {
			return true
		}
	}
	return false
}

// first returns the first of rs that match accepts, or nil.
func first[T any](rs []T, match func(*T) bool) *T {
	for i := range rs {
		if match(&rs[i]) {
			return &rs[i]
		}
	}
	return nil
}

func findTunnel(rs []TunnelResult, impl string, s Shape, workers int) *TunnelResult {
	return first(rs, func(r *TunnelResult) bool {
		return r.Impl == impl && r.Shape == s && r.Workers == workers && r.Err == ""
	})
}

func findWake(rs []WakeResult, impl string) *WakeResult {
	return first(rs, func(r *WakeResult) bool { return r.Impl == impl })
}

func findBurst(rs []BurstResult, impl string) *BurstResult {
	return first(rs, func(r *BurstResult) bool { return r.Impl == impl && r.Err == "" })
}

func findRecovery(rs []RecoveryResult, impl string, health bool) *RecoveryResult {
	return first(rs, func(r *RecoveryResult) bool { return r.Impl == impl && r.HealthCheck == health })
}

// findDisruption finds an implementation's crash result (down 0: any) or outage result for a cut.
func findDisruption(rs []DisruptionResult, impl string, down time.Duration) *DisruptionResult {
	return first(rs, func(r *DisruptionResult) bool { return r.Impl == impl && (down == 0 || r.Down == down) })
}

func findBulk(rs []BulkResult, impl string, streams int) *BulkResult {
	return first(rs, func(r *BulkResult) bool { return r.Impl == impl && r.Streams == streams && r.MiBps > 0 })
}

func findMemory(rs []MemoryResult, impl string) *MemoryResult {
	return first(rs, func(r *MemoryResult) bool { return r.Impl == impl && r.Err == "" })
}

// ratio formats v/base as "12.3x", or "" when there is no base.
func ratio(v, base float64) string {
	if base == 0 || math.IsInf(base, 0) || math.IsNaN(base) {
		return ""
	}
	r := v / base
	switch {
	case r >= 100:
		return fmt.Sprintf("%.0fx", r)
	case r >= 10:
		return fmt.Sprintf("%.1fx", r)
	default:
		return fmt.Sprintf("%.2fx", r)
	}
}

// dur formats a duration with three significant digits.
func dur(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	case d < 10*time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	default:
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
}

// bytes formats a byte count.
func bytes(v float64) string {
	switch {
	case v >= 1<<20:
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	case v >= 10<<10:
		return fmt.Sprintf("%.0f KiB", v/(1<<10))
	case v >= 1<<10:
		return fmt.Sprintf("%.1f KiB", v/(1<<10))
	default:
		return fmt.Sprintf("%.0f B", v)
	}
}

// count formats a large rate.
func count(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0fk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

// cell makes an error message fit in a table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", "/")
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

// retryNote says how measurements disturbed by other processes were handled.
func retryNote() string {
	if quietTries <= 1 {
		return "Measurements were not repeated when other processes were busy."
	}
	return fmt.Sprintf("A measurement of tunnel, profile, wake, burst, fill, bulk or accessors during which other processes used "+
		"more than %.0f%% of the CPUs was repeated, up to %d tries in all, keeping the quietest.", 100*maxElsewhere, quietTries)
}
