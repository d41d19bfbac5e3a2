package main

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

// ---------------------------------------------------------------------------------------------
// Profile: where the tunnel op's CPU goes, quicpool against raw quic-go

// The profile workload runs the tunnel op at 16 workers on the first shape once more for quicpool
// and for raw quic-go (server opens), with Go's CPU profiler on during the measured window, and
// splits each sample's time by the code it was spent for: the innermost frame of the stack that
// belongs to quicpool, hollywood, quic-go or this bench (a sample in crypto or a syscall counts
// for the package that called it), or, with none of them on the stack, the Go runtime's own
// goroutines (scheduler, garbage collector). quic-go's time is split by its caller: the exchange,
// the code that gets a stream, or quic-go's own goroutines. Divided by the ops of the window: CPU per op by part.

// Parts of a profile, in the order the report lists them.
const (
	partQuicpool  = "quicpool (package quicpool and its actors)"
	partHollywood = "hollywood (actor engine: inboxes, wakes)"
	partQuicGoRun = "quic-go: its connections' own goroutines (packets in and out, acknowledgements, crypto, timers)"
	partQuicGoGet = "quic-go: called to get a stream (opens, accepts; quicpool's handshake byte, ID and deadlines)"
	partQuicGoX   = "quic-go: called by the exchange (1 KiB each way, half-close, read to EOF, close)"
	partRawPool   = "raw quic-go's stand-in pool (the bench's Gets around OpenStreamSync and AcceptStream)"
	partHarness   = "bench harness (workers, the exchange's loop)"
	partGC        = "Go runtime: garbage collector"
	partScheduler = "Go runtime: scheduler, timers, idle"
)

var profileParts = []string{partQuicpool, partHollywood, partQuicGoRun, partQuicGoGet, partQuicGoX, partRawPool, partHarness, partGC, partScheduler}

// partShort names a part in a sentence.
var partShort = map[string]string{
	partQuicpool:  "quicpool's own code",
	partHollywood: "hollywood",
	partQuicGoRun: "quic-go's connection goroutines",
	partQuicGoGet: "quic-go called to get a stream",
	partQuicGoX:   "quic-go called by the exchange",
	partRawPool:   "raw quic-go's stand-in pool",
	partHarness:   "the bench harness",
	partGC:        "the garbage collector",
	partScheduler: "the scheduler",
}

// ProfileResult is one profiled tunnel run.
type ProfileResult struct {
	Impl    string
	Workers int
	Tunnel  TunnelResult             // the run's ops, ops/s and CPU per op
	Sampled time.Duration            // CPU time the profiler sampled
	Parts   map[string]time.Duration // sampled CPU time by part
	Syscall map[string]time.Duration // of it, in system calls
	Funcs   []FuncCost               // quicpool's and hollywood's functions, most CPU first
	Err     string
}

// FuncCost is the CPU time spent for one function: in it, and in what it called outside the
// four owners (runtime, crypto, syscalls).
type FuncCost struct {
	Name string
	CPU  time.Duration
}

// PerOp returns d per op of the profiled window.
func (r ProfileResult) PerOp(d time.Duration) time.Duration {
	if r.Tunnel.Ops == 0 {
		return 0
	}
	return d / time.Duration(r.Tunnel.Ops)
}

// runProfile runs one profiled tunnel run of impl.
func runProfile(impl Impl, s Shape, workers int, warmup, window time.Duration) ProfileResult {
	pair, err := startPair(impl, s, setupWait)
	if err != nil {
		return ProfileResult{Impl: impl.Name, Workers: workers, Err: err.Error()}
	}
	defer pair.Close()
	return profilePair(pair, workers, warmup, window)
}

// profilePair runs one profiled tunnel run on a pair.
func profilePair(pair *Pair, workers int, warmup, window time.Duration) ProfileResult {
	r := ProfileResult{Impl: pair.Impl.Name, Workers: workers}
	var buf strings.Builder // the profile, gzipped protobuf
	r.Tunnel = runTunnelOn(pair, workers, warmup, window, &buf)
	if r.Tunnel.Err != "" {
		r.Err = r.Tunnel.Err
		return r
	}
	p, err := profile.Parse(strings.NewReader(buf.String()))
	if err != nil {
		r.Err = "cpu profile: " + err.Error()
		return r
	}
	if err := r.split(p); err != nil {
		r.Err = err.Error()
	}
	return r
}

// split attributes every sample of p to its part and, for quicpool and hollywood, its function.
func (r *ProfileResult) split(p *profile.Profile) error {
	cpu := sampleIndex(p, "cpu", "nanoseconds")
	if cpu < 0 {
		return fmt.Errorf("cpu profile: no cpu/nanoseconds samples")
	}
	r.Parts, r.Syscall = map[string]time.Duration{}, map[string]time.Duration{}
	funcs := map[string]time.Duration{}
	for _, smp := range p.Sample {
		d := time.Duration(smp.Value[cpu])
		part, fn, syscall := attribute(smp)
		r.Sampled += d
		r.Parts[part] += d
		if syscall {
			r.Syscall[part] += d
		}
		if part == partQuicpool || part == partHollywood {
			funcs[fn] += d
		}
	}
	for name, d := range funcs {
		r.Funcs = append(r.Funcs, FuncCost{Name: name, CPU: d})
	}
	slices.SortFunc(r.Funcs, func(a, b FuncCost) int { return cmp.Or(cmp.Compare(b.CPU, a.CPU), strings.Compare(a.Name, b.Name)) })
	return nil
}

// sampleIndex returns the index of a profile's sample values of the given type and unit, -1 if
// it has none.
func sampleIndex(p *profile.Profile, typ, unit string) int {
	return slices.IndexFunc(p.SampleType, func(st *profile.ValueType) bool { return st.Type == typ && st.Unit == unit })
}

// attribute returns a sample's part, the function of the innermost frame that decided it, and
// whether the sample is in a system call. Frames go from the leaf to the root; a location's
// inlined functions come innermost first.
func attribute(smp *profile.Sample) (part, fn string, syscall bool) {
	names := frames(smp)
	if len(names) > 0 {
		syscall = isSyscall(names[0])
	}
	gc := false
	for i, name := range names {
		if p := owner(name); p != "" {
			if p == partQuicGoRun {
				p = quicGoCaller(names[i+1:])
			}
			return p, shortName(name), syscall
		}
		if strings.HasPrefix(name, "runtime.gcBgMarkWorker") || strings.HasPrefix(name, "runtime.bgsweep") ||
			strings.HasPrefix(name, "runtime.bgscavenge") || strings.HasPrefix(name, "runtime.gcStart") || name == "runtime._GC" {
			gc = true
		}
	}
	if gc {
		return partGC, "", syscall
	}
	return partScheduler, "", syscall
}

// isSyscall tells whether a leaf function is the entry into a system call.
func isSyscall(name string) bool {
	switch name {
	case "syscall.Syscall", "syscall.Syscall6", "syscall.RawSyscall", "syscall.RawSyscall6",
		"runtime.futex", "runtime.usleep", "runtime.epollwait", "runtime.write1", "runtime.read":
		return true
	}
	return strings.HasPrefix(name, "internal/runtime/syscall") || strings.HasPrefix(name, "runtime/internal/syscall")
}

// cpuOwners are the CPU profile's parts by the prefix of a function's name, first match first.
var cpuOwners = []prefixPart{
	{"main.(*raw", partRawPool}, {"main.raw", partRawPool},
	{"github.com/quicpool/quicpool", partQuicpool},
	{"github.com/anthdm/hollywood", partHollywood},
	{"github.com/quic-go/quic-go", partQuicGoRun},
	{"main.", partHarness},
}

// owner returns the part a function belongs to, "" for the standard library and the runtime.
func owner(name string) string { return partOf(name, cpuOwners) }

// prefixPart is a part of a profile and the prefix of the names of the functions it holds.
type prefixPart struct{ prefix, part string }

// partOf returns the part of the first entry of table whose prefix name has, "" for none.
func partOf(name string, table []prefixPart) string {
	for _, t := range table {
		if strings.HasPrefix(name, t.prefix) {
			return t.part
		}
	}
	return ""
}

// quicGoCaller tells, for a sample in quic-go, who called quic-go, from the frames outside the
// innermost quic-go one: the exchange (the bench's tunnel op once it holds both streams),
// quicpool or the bench's raw pool getting a stream, or no one (quic-go's own goroutines).
func quicGoCaller(callers []string) string {
	part := partQuicGoRun
	for _, name := range callers {
		switch {
		case strings.HasPrefix(name, "main.exchange") || strings.HasPrefix(name, "main.readToEOF"):
			return partQuicGoX
		case strings.HasPrefix(name, "main.") || strings.HasPrefix(name, "github.com/quicpool/quicpool"):
			part = partQuicGoGet
		}
	}
	return part
}

// frames returns the function names of a sample's stack from the leaf to the root; a location's
// inlined functions come innermost first.
func frames(smp *profile.Sample) []string {
	var names []string
	for _, loc := range smp.Location {
		for _, line := range loc.Line {
			if line.Function != nil {
				names = append(names, line.Function.Name)
			}
		}
	}
	return names
}

// shortName drops a function name's module path and a generic type's arguments:
// actors.(*coordinator).Receive, ringbuffer.(*RingBuffer[…]).Push.
func shortName(name string) string {
	if i, j := strings.IndexByte(name, '['), strings.LastIndexByte(name, ']'); i >= 0 && j > i {
		name = name[:i] + "[…]" + name[j+1:]
	}
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		return name[i+1:]
	}
	return name
}

// micros formats a CPU time per op in microseconds with one decimal.
func micros(d time.Duration) string {
	return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond))
}

// profileTable reports the profiled runs: CPU per op by part, and quicpool's heaviest functions.
func profileTable(cfg Config, rs []ProfileResult) string {
	if len(rs) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## 1c. Where the tunnel op's CPU goes\n\n")
	fmt.Fprintf(&b, "One more tunnel run per implementation (%d workers, %s, %s after %s unmeasured) with Go's CPU profiler on during the "+
		"measured window. Each sample counts for the innermost frame of its stack that belongs to quicpool, hollywood, quic-go or "+
		"this bench (time in crypto, the runtime's allocator or a system call counts for the package that called it); a sample "+
		"with none of them on its stack is the Go runtime's own work: the garbage collector, or the scheduler (a goroutine "+
		"parking, the runtime finding the next one to run). quic-go's time is split by who called it: the exchange on the two "+
		"streams, the code that gets a stream (quicpool; raw quic-go's stand-in pool, whose server opens with OpenStreamSync "+
		"and whose client accepts with AcceptStream on a goroutine of its own), or no one (quic-go's goroutines). *Difference*: "+
		"quicpool's CPU per op minus raw quic-go's. Divided by the window's ops: CPU per op by part (the "+
		"profiler samples 100 times a second per thread, so parts below a few µs per op are rough). *In syscalls*: of it, "+
		"time in system calls (UDP sends and receives, futex wake-ups).\n\n",
		rs[0].Workers, cfg.Shapes[0], dur(cfg.Duration), dur(cfg.Warmup))
	var cols []ProfileResult
	var labels []string
	for _, impl := range []string{nameQuicpool, nameRaw} { // the difference is quicpool's minus raw's
		for _, r := range rs {
			if r.Impl == impl {
				cols, labels = append(cols, r), append(labels, r.Impl)
			}
		}
	}
	b.WriteString(cpuPartsTable(cols, labels))
	for _, r := range rs {
		if r.Impl != nameQuicpool || r.Err != "" || len(r.Funcs) == 0 {
			continue
		}
		b.WriteString("quicpool's and hollywood's heaviest functions in that run (each with what it called in the runtime, crypto and " +
			"syscalls, but not in quic-go):\n\n| Function | CPU/op |\n|---|---:|\n")
		for _, f := range r.Funcs[:min(len(r.Funcs), 12)] {
			fmt.Fprintf(&b, "| `%s` | %s |\n", f.Name, micros(r.PerOp(f.CPU)))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// cpuPartsTable shows profiled runs side by side: CPU per op by part, and with two runs that
// both worked, the first's minus the second's.
func cpuPartsTable(rs []ProfileResult, labels []string) string {
	var b strings.Builder
	diff := len(rs) == 2 && rs[0].Err == "" && rs[1].Err == ""
	b.WriteString("| Part |")
	for i := range rs {
		fmt.Fprintf(&b, " %s: CPU/op | in syscalls |", labels[i])
	}
	if diff {
		b.WriteString(" difference |")
	}
	b.WriteString("\n|---|")
	for range rs {
		b.WriteString("---:|---:|")
	}
	if diff {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for _, part := range append(slices.Clone(profileParts), "all sampled") {
		fmt.Fprintf(&b, "| %s |", part)
		for _, r := range rs {
			if r.Err != "" {
				fmt.Fprintf(&b, " %s | |", cell(r.Err))
				continue
			}
			d, sys := r.part(part)
			fmt.Fprintf(&b, " %s | %s |", micros(r.PerOp(d)), micros(r.PerOp(sys)))
		}
		if diff {
			d0, _ := rs[0].part(part)
			d1, _ := rs[1].part(part)
			fmt.Fprintf(&b, " %s |", signed(rs[0].PerOp(d0)-rs[1].PerOp(d1)))
		}
		b.WriteString("\n")
	}
	b.WriteString("| ops in the window (ops/s) |")
	for _, r := range rs {
		fmt.Fprintf(&b, " %d (%.0f) | |", r.Tunnel.Ops, r.Tunnel.OpsPerSec)
	}
	if diff {
		b.WriteString(" |")
	}
	b.WriteString("\n\n")
	return b.String()
}

// excesses names the parts in which a costs the most CPU per op beyond b, at most three.
func excesses(a, b ProfileResult) []string {
	type diff struct {
		part string
		d    time.Duration
	}
	var ds []diff
	for _, part := range profileParts {
		ds = append(ds, diff{part, a.PerOp(a.Parts[part]) - b.PerOp(b.Parts[part])})
	}
	slices.SortFunc(ds, func(x, y diff) int { return cmp.Compare(y.d, x.d) })
	var more []string
	for _, d := range ds[:min(3, len(ds))] {
		if d.d > 0 {
			more = append(more, fmt.Sprintf("%s %s", partShort[d.part], signed(d.d)))
		}
	}
	return more
}

// part returns the sampled CPU time of one part and, of it, the time in system calls; "all
// sampled" is the whole profile.
func (r ProfileResult) part(name string) (cpu, syscalls time.Duration) {
	if name != "all sampled" {
		return r.Parts[name], r.Syscall[name]
	}
	for _, v := range r.Syscall {
		syscalls += v
	}
	return r.Sampled, syscalls
}

// signed formats a difference of CPU times per op with its sign.
func signed(d time.Duration) string {
	if d < 0 {
		return "-" + micros(-d)
	}
	return "+" + micros(d)
}

// findProfile returns the profiled run of impl, if any.
func findProfile(rs []ProfileResult, impl string) *ProfileResult {
	return first(rs, func(r *ProfileResult) bool { return r.Impl == impl && r.Err == "" })
}
