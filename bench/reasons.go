package main

import (
	"cmp"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/quicpool/quicpool"
)

// missReasons explains each family of missed targets with this run's numbers: what the time or
// the memory went to, as far as the run measured it. Targets that passed or were not measured
// get nothing.
func missReasons(cfg Config, res Results, checks []check) string {
	missed := func(prefixes ...string) bool {
		return slices.ContainsFunc(checks, func(c check) bool {
			return c.status() == "MISS" && slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(c.target, p) })
		})
	}
	var reasons []string
	if missed("Tunnel, 16 workers: ops/s >= 0.8x raw", "Tunnel, 16 workers: p50 below raw", "Tunnel ") {
		reasons = append(reasons, tunnelReason(cfg, res))
	}
	if missed("Burst") {
		reasons = append(reasons, burstReason(res))
	}
	if missed("Memory per idle stream, server", "Memory per idle stream, client") {
		reasons = append(reasons, memoryReason(res))
	}
	if missed("Fill to minCap") {
		reasons = append(reasons, fillReason(cfg, res))
	}
	if missed("Scale: ops/s") {
		reasons = append(reasons, scaleReason(cfg, res))
	}
	if len(reasons) == 0 {
		return ""
	}
	return "## Why the misses\n\n" + strings.Join(reasons, "") + "\n"
}

// tunnelReason: quicpool's tunnel op against raw quic-go's fresh stream, from the profile.
func tunnelReason(cfg Config, res Results) string {
	var b strings.Builder
	fmt.Fprintf(&b, "- **Tunnel against raw quic-go (server opens).** On %d cores the tunnel is CPU-bound, so ops/s and p50 follow "+
		"the CPU per op.", runtime.NumCPU())
	b.WriteString(" The pool's op does work the leanest op does not: every pooled stream also carries the NodePass " +
		"handshake (the client's byte, the server's 4-byte ID; a client holding plenty of idle streams, or with 8 opens " +
		"under way, opens its replacements 8 at a time, so that these share packets), the replacement stream is opened by the client and its " +
		"ID read, and the take and the refill pass through the actors.")
	q, r := findTunnel(res.Tunnel, nameQuicpool, cfg.Shapes[0], 16), findTunnel(res.Tunnel, nameRaw, cfg.Shapes[0], 16)
	if q != nil && r != nil && q.Packets > 0 && r.Packets > 0 {
		fmt.Fprintf(&b, " Packets per op at 16 workers, %s: %.2f against %.2f.", cfg.Shapes[0], q.Packets, r.Packets)
	}
	b.WriteString(spreadReason(cfg, res))
	qp, rp := findProfile(res.Profile, nameQuicpool), findProfile(res.Profile, nameRaw)
	if qp == nil || rp == nil {
		b.WriteString(" (Run the profile workload for where the CPU goes.)\n")
		return b.String()
	}
	more := excesses(*qp, *rp)
	fmt.Fprintf(&b, " Profiled (section 1c): %s of CPU per op against %s (%s)", micros(qp.PerOp(qp.Sampled)), micros(rp.PerOp(rp.Sampled)),
		signed(qp.PerOp(qp.Sampled)-rp.PerOp(rp.Sampled)))
	if len(more) > 0 {
		fmt.Fprintf(&b, "; the largest excesses: %s", strings.Join(more, "; "))
	}
	b.WriteString(".\n")
	return b.String()
}

// spreadReason: a larger pool spreads its streams over more connections, so streams taken
// together share fewer packets (the shapes after the first, at 16 workers, against the first).
func spreadReason(cfg Config, res Results) string {
	first := findTunnel(res.Tunnel, nameQuicpool, cfg.Shapes[0], 16)
	if first == nil || first.Packets == 0 {
		return ""
	}
	var b strings.Builder
	for _, s := range cfg.Shapes[1:] {
		q, r := findTunnel(res.Tunnel, nameQuicpool, s, 16), findTunnel(res.Tunnel, nameRaw, s, 16)
		n := shardsFor(s.MaxCap)
		if q == nil || r == nil || q.Packets == 0 || n == shardsFor(cfg.Shapes[0].MaxCap) {
			continue
		}
		fmt.Fprintf(&b, " A %s pool keeps its idle streams on %d connections, and hand-outs go round them (up to 16 in a "+
			"row from one) so that each carries its share of the tunnels: streams taken together share fewer packets. "+
			"At 16 workers it sent %.2f packets and used %s of CPU per op (%s: %.2f and %s; raw quic-go at %s: %.2f and %s).",
			s, n, q.Packets, micros(q.CPUPerOp), cfg.Shapes[0], first.Packets, micros(first.CPUPerOp), s, r.Packets,
			micros(r.CPUPerOp))
	}
	return b.String()
}

// burstReason: three rounds of work on two cores against raw quic-go's one round of opens.
func burstReason(res Results) string {
	var b strings.Builder
	q, r := findBurst(res.Burst, nameQuicpool), findBurst(res.Burst, nameRaw)
	takes := "the"
	if q != nil {
		takes = fmt.Sprint(q.Takes)
	}
	fmt.Fprintf(&b, "- **Burst.** Raw quic-go opens %[1]s streams in one round. The pool works in three that overlap: it hands "+
		"out its idle streams, opens streams for the callers still waiting (its opens in flight are bounded by maxCap; "+
		"while 8 are under way, the replacements of the streams taken go out 8 at a time), then refills both sides; every take is a message round trip to each side's coordinator, and both pools and all "+
		"%[1]s callers share %[2]d cores.", takes, runtime.NumCPU())
	if q != nil && r != nil && q.Err == "" && r.Err == "" {
		fmt.Fprintf(&b, " This run: every take served after %s (raw quic-go %s), back at capacity %s later.", dur(q.Served),
			dur(r.Served), dur(q.Refilled-q.Served))
		with, without := burstsByCollection(q.All)
		if len(with) > 0 && len(without) > 0 {
			fmt.Fprintf(&b, " The runs a garbage collection ran during took %s, the others %s (section 2).",
				durRange(with), durRange(without))
		}
	}
	b.WriteString("\n")
	return b.String()
}

// burstsByCollection splits the times of the runs that completed into those during which a garbage
// collection ran and the others.
func burstsByCollection(runs []BurstRun) (with, without []time.Duration) {
	for _, r := range runs {
		switch {
		case !r.back():
		case r.GCs > 0:
			with = append(with, r.Time)
		default:
			without = append(without, r.Time)
		}
	}
	return with, without
}

// durRange is "a" for one duration, "a to b" (shortest, longest) for more.
func durRange(ds []time.Duration) string {
	lo, hi := slices.Min(ds), slices.Max(ds)
	if lo == hi {
		return dur(lo)
	}
	return dur(lo) + " to " + dur(hi)
}

// memoryReason: the heap the pool adds to the QUIC streams themselves is mostly fixed cost.
func memoryReason(res Results) string {
	var b strings.Builder
	fmt.Fprintf(&b, "- **Memory per idle stream.** The QUIC stream is most of it; the pool adds fixed costs spread over the "+
		"streams (a QUIC connection per %d streams where NodePass has one, and the actor engine's registry and inboxes) "+
		"and its idle store, a few dozen bytes a stream.", quicpool.StreamsPerShard)
	q, n, r := findMemory(res.Memory, nameQuicpool), findMemory(res.Memory, nameNodePass), findMemory(res.Memory, nameRawClientOpens)
	if q != nil && n != nil && r != nil {
		var sides []string
		for _, side := range []string{"server", "client"} {
			qs, ns, rs := q.side(side), n.side(side), r.side(side)
			if qs.Idle == 0 || ns.Idle == 0 || rs.Idle == 0 {
				continue
			}
			sides = append(sides, fmt.Sprintf("%s side at %d idle: quicpool %s, NodePass %s, raw quic-go's %d streams on one connection %s",
				side, qs.Idle, bytes(qs.HeapPer()), bytes(ns.HeapPer()), rs.Idle, bytes(rs.HeapPer())))
		}
		if len(sides) > 0 {
			fmt.Fprintf(&b, " Per stream, %s.", strings.Join(sides, "; "))
		}
	}
	if q != nil && n != nil {
		if conns := shardsFor(q.N); conns > 1 {
			fmt.Fprintf(&b, " quicpool uses %d connections.", conns)
		}
		for _, side := range []string{"server", "client"} {
			qs, ns := q.side(side), n.side(side)
			if qs.Idle > 0 && ns.Idle > 0 && qs.HeapPer() > ns.HeapPer() {
				b.WriteString(heapDifference(side, qs, ns))
			}
		}
	}
	b.WriteString("\n")
	return b.String()
}

// heapDifference explains, part by part (section 6's heap profiles), what quicpool's side holds
// beyond NodePass's: the parts that differ by 8 KiB or more, largest first.
func heapDifference(side string, q, n MemSide) string {
	if q.Parts == nil || n.Parts == nil {
		return ""
	}
	type diff struct {
		part string
		d    int64
	}
	var ds []diff
	for _, part := range heapParts {
		if d := q.Parts[part] - n.Parts[part]; d >= 8<<10 || d <= -8<<10 {
			ds = append(ds, diff{part, d})
		}
	}
	slices.SortFunc(ds, func(a, b diff) int { return cmp.Compare(b.d, a.d) })
	var parts []string
	for _, d := range ds {
		sign := "+"
		if d.d < 0 {
			sign = ""
		}
		parts = append(parts, fmt.Sprintf("%s %s%s", heapShort[d.part], sign, kib(d.d)))
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf(" The %s's heap against NodePass's, by part (section 6; %s against %s in all in the profiled pair): %s.",
		side, kib(sum(q.Parts)), kib(sum(n.Parts)), strings.Join(parts, "; "))
}

// sum adds up a side's heap parts.
func sum(parts map[string]int64) int64 {
	var total int64
	for _, v := range parts {
		total += v
	}
	return total
}

// heapShort names the heap's parts in a sentence.
var heapShort = map[string]string{
	heapStreams:   "quic-go's streams",
	heapConns:     "quic-go's connections",
	heapQuicpool:  "quicpool",
	heapHollywood: "hollywood",
	heapNodePass:  "NodePass's own",
	heapVistone:   "vistone's own",
	heapHarness:   "the bench",
	heapG:         "goroutine descriptors",
	heapOther:     "the runtime and standard library",
}

// shardsFor is the number of QUIC connections a quicpool pool of maxCap n uses.
func shardsFor(n int) int {
	return min(max((n+quicpool.StreamsPerShard-1)/quicpool.StreamsPerShard, 1), quicpool.MaxShards)
}

// fillReason: fill is a TLS handshake and a round of opens for both; say whether the runs overlap.
func fillReason(cfg Config, res Results) string {
	var b strings.Builder
	b.WriteString("- **Fill.** A fill is one TLS handshake and one round of opens for quicpool (the first connection fills " +
		"the pool before the others dial) as for NodePass; with more than one connection, the next one's TLS handshake " +
		"starts as the first has filled the pool, and its CPU can overlap the fill's last steps.")
	for _, s := range cfg.Shapes {
		var q, n *FillResult
		for i := range res.Fill {
			switch f := &res.Fill[i]; {
			case f.Shape != s || f.Runs == 0:
			case f.Impl == nameQuicpool:
				q = f
			case f.Impl == nameNodePass:
				n = f
			}
		}
		if q != nil && n != nil && q.Fill > n.Fill {
			spread := "overlap: the medians differ by less than the runs' spread"
			if q.Min > n.Max {
				spread = "do not overlap: quicpool was slower in every run"
			}
			fmt.Fprintf(&b, " %s: %s against %s; the runs (%s – %s against %s – %s) %s.", s, dur(q.Fill), dur(n.Fill),
				dur(q.Min), dur(q.Max), dur(n.Min), dur(n.Max), spread)
		}
	}
	b.WriteString("\n")
	return b.String()
}

// scaleReason: many connections share fewer packets.
func scaleReason(cfg Config, res Results) string {
	var b strings.Builder
	b.WriteString("- **Scale.** Hand-outs go round the connections, up to 16 in a row from one, so that every connection " +
		"carries its share of the tunnels; with many connections, streams taken together are less likely to share " +
		"packets and acknowledgements.")
	c := cfg.Scale
	if len(c.Caps) > 0 && len(c.Workers) > 0 {
		bigN, bigW := slices.Max(c.Caps), slices.Max(c.Workers)
		big, small := findScale(res.Scale, nameQuicpool, bigN), findScale(res.Scale, nameQuicpool, 64)
		if big != nil && small != nil {
			if bt, st := big.run(bigW), small.run(64); bt != nil && st != nil && bt.Ops > 0 && st.Ops > 0 {
				fmt.Fprintf(&b, " This run: %d workers on %d streams (%d connections each side) sent %.2f packets and used %s "+
					"of CPU per op, against %.2f and %s at 64 workers on 64 streams (one connection).", bigW, bigN, shardsFor(bigN),
					bt.Packets, micros(bt.CPUPerOp), st.Packets, micros(st.CPUPerOp))
			}
		}
		if bp, sp := scaleProfiles(c, res.Scale); bp != nil && sp != nil && bp.Err == "" && sp.Err == "" {
			fmt.Fprintf(&b, " Profiled (section 9): %s of CPU per op against %s (%s)", micros(bp.PerOp(bp.Sampled)),
				micros(sp.PerOp(sp.Sampled)), signed(bp.PerOp(bp.Sampled)-sp.PerOp(sp.Sampled)))
			if more := excesses(*bp, *sp); len(more) > 0 {
				fmt.Fprintf(&b, "; the largest excesses: %s", strings.Join(more, "; "))
			}
			b.WriteString(".")
		}
	}
	b.WriteString("\n")
	return b.String()
}
