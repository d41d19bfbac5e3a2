package main

import (
	"encoding/xml"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
)

// TestQuickTunnel runs the tunnel workload briefly on quicpool and renders its report and
// charts, so that the bench keeps compiling and working. It checks only that the workload ran
// (no error, some ops, well-formed output), not any number: timing targets belong to full runs.
func TestQuickTunnel(t *testing.T) {
	small := Shape{MinCap: 8, MaxCap: 16, MinIvl: 100 * time.Millisecond, MaxIvl: time.Second, KeepAlive: 30 * time.Second}
	r := runTunnel(quicpoolImpl(), small, 4, 100*time.Millisecond, 500*time.Millisecond)
	if r.Err != "" {
		t.Fatal(r.Err)
	}
	if r.Ops == 0 || r.Errors != 0 {
		t.Fatalf("%d ops, %d errors", r.Ops, r.Errors)
	}
	if r.P50 <= 0 || r.P99 < r.P50 {
		t.Fatalf("p50 %v, p99 %v", r.P50, r.P99)
	}
	t.Logf("%.0f ops/s, p50 %v, p99 %v", r.OpsPerSec, r.P50, r.P99)

	cfg := Config{Shapes: []Shape{small}, Machine: machine(), RecoveryWait: time.Second, TunnelReps: 1, Duration: time.Second}
	res := Results{Tunnel: []TunnelResult{r}}
	for name, svg := range headlineCharts(cfg, res) {
		if err := xml.Unmarshal([]byte(svg), new(struct{})); err != nil {
			t.Errorf("%s is not well-formed: %v", name, err)
		}
	}
	md := report(Env{Date: time.Now(), Command: "test"}, cfg, res, nil)
	for _, want := range []string{"## Targets", "## 1. Tunnel round trip", "| 4 | quicpool |"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

// TestRelay checks the outage workload's relay: it forwards both ways with an upstream socket per
// client, drops everything while blackholed, forwards again after, and Close ends it.
func TestRelay(t *testing.T) {
	target, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	sources := make(chan string, 16)
	go func() { // echo, noting each datagram's source
		buf := make([]byte, 1500)
		for {
			n, from, err := target.ReadFromUDP(buf)
			if err != nil {
				return
			}
			sources <- from.String()
			_, _ = target.WriteToUDP(buf[:n], from)
		}
	}()
	r, err := newRelay(target.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	dial := func() *net.UDPConn {
		c, err := net.Dial("udp", r.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c.(*net.UDPConn)
	}
	// roundTrip sends msg and returns what came back within wait ("" for nothing).
	roundTrip := func(c *net.UDPConn, msg string, wait time.Duration) string {
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(wait))
		buf := make([]byte, 1500)
		n, err := c.Read(buf)
		if err != nil {
			return ""
		}
		return string(buf[:n])
	}
	a, b := dial(), dial()
	if got := roundTrip(a, "a1", 5*time.Second); got != "a1" {
		t.Fatalf("client a got %q, want a1", got)
	}
	if got := roundTrip(b, "b1", 5*time.Second); got != "b1" {
		t.Fatalf("client b got %q, want b1", got)
	}
	if sa, sb := <-sources, <-sources; sa == sb {
		t.Fatalf("both clients reached the target from %s", sa)
	}
	r.Blackhole(true)
	if got := roundTrip(a, "a2", 300*time.Millisecond); got != "" {
		t.Fatalf("blackholed, client a got %q", got)
	}
	r.Blackhole(false)
	if got := roundTrip(a, "a3", 5*time.Second); got != "a3" {
		t.Fatalf("restored, client a got %q, want a3", got)
	}
	done := make(chan struct{})
	go func() { r.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return within 5s")
	}
}

// TestProfileAttribution checks how a CPU sample is split: by the innermost frame of quicpool,
// hollywood, quic-go or the bench; quic-go's time by its caller; the rest by the runtime's
// goroutine it ran on.
func TestProfileAttribution(t *testing.T) {
	stack := func(names ...string) *profile.Sample { // leaf first
		smp := &profile.Sample{}
		for _, n := range names {
			smp.Location = append(smp.Location, &profile.Location{Line: []profile.Line{{Function: &profile.Function{Name: n}}}})
		}
		return smp
	}
	for _, c := range []struct {
		smp     *profile.Sample
		part    string
		fn      string
		syscall bool
	}{
		{stack("runtime.mallocgc", "github.com/quicpool/quicpool/actors.(*coordinator).Receive", "github.com/anthdm/hollywood/actor.(*process).Invoke"),
			partQuicpool, "actors.(*coordinator).Receive", false},
		{stack("github.com/anthdm/hollywood/ringbuffer.(*RingBuffer[go.shape.struct { Msg interface {} }]).PopN", "runtime.goexit"),
			partHollywood, "ringbuffer.(*RingBuffer[…]).PopN", false},
		{stack("internal/runtime/syscall/linux.Syscall6", "syscall.Syscall", "github.com/quic-go/quic-go.(*oobConn).WritePacket", "github.com/quic-go/quic-go.(*Conn).run"),
			partQuicGoRun, "quic-go.(*oobConn).WritePacket", true},
		{stack("github.com/quic-go/quic-go.(*Conn).OpenStream", "github.com/quicpool/quicpool/actors.(*clientShard).openStreams"),
			partQuicGoGet, "quic-go.(*Conn).OpenStream", false},
		{stack("github.com/quic-go/quic-go.(*ReceiveStream).Read", "github.com/quicpool/quicpool.(*StreamConn).Read", "main.readToEOF", "main.exchange"),
			partQuicGoX, "quic-go.(*ReceiveStream).Read", false},
		{stack("runtime.futex", "runtime.findRunnable", "runtime.schedule"), partScheduler, "", true},
		{stack("runtime.scanobject", "runtime.gcDrain", "runtime.gcBgMarkWorker.func2"), partGC, "", false},
	} {
		part, fn, syscall := attribute(c.smp)
		if part != c.part || fn != c.fn || syscall != c.syscall {
			t.Errorf("%s: got %q %q %v, want %q %q %v", c.smp.Location[0].Line[0].Function.Name, part, fn, syscall, c.part, c.fn, c.syscall)
		}
	}
}

// TestProfiledTunnel profiles a short tunnel run of quicpool and checks that the samples were
// split (every part adds up to what was sampled, quicpool's own code and quic-go have some) and
// that the report shows them.
func TestProfiledTunnel(t *testing.T) {
	small := Shape{MinCap: 8, MaxCap: 16, MinIvl: 100 * time.Millisecond, MaxIvl: time.Second, KeepAlive: 30 * time.Second}
	r := runProfile(quicpoolImpl(), small, 4, 100*time.Millisecond, 500*time.Millisecond)
	if r.Err != "" {
		t.Fatal(r.Err)
	}
	var sum time.Duration
	for _, d := range r.Parts {
		sum += d
	}
	if r.Tunnel.Ops == 0 || r.Sampled == 0 || sum != r.Sampled {
		t.Fatalf("%d ops, %v sampled, parts add up to %v", r.Tunnel.Ops, r.Sampled, sum)
	}
	if r.Parts[partQuicpool] == 0 || r.Parts[partQuicGoRun] == 0 || len(r.Funcs) == 0 {
		t.Fatalf("no quicpool or quic-go samples: %v", r.Parts)
	}
	cfg := Config{Shapes: []Shape{small}, Duration: 500 * time.Millisecond, Warmup: 100 * time.Millisecond}
	md := profileTable(cfg, []ProfileResult{r})
	for _, want := range []string{"## 1c.", "| " + partQuicpool + " |", "| all sampled |"} {
		if !strings.Contains(md, want) {
			t.Errorf("profile table lacks %q:\n%s", want, md)
		}
	}
}

// TestHeapAttribution checks how a live allocation is split: by the innermost frame of a known
// package; quic-go's by whether a stream function is on the stack; goroutine descriptors apart;
// a TLS handshake's goroutine counts for the connections.
func TestHeapAttribution(t *testing.T) {
	for _, c := range []struct {
		stack []string // leaf first
		part  string
	}{
		{[]string{"runtime.mallocgc", "github.com/quic-go/quic-go.newSendStream", "github.com/quic-go/quic-go.newStream",
			"github.com/quic-go/quic-go.(*incomingStreamsMap[go.shape.*uint8]).GetOrOpenStream", "github.com/quic-go/quic-go.(*Conn).run"}, heapStreams},
		{[]string{"context.withCancel", "context.WithCancelCause", "github.com/quic-go/quic-go.newSendStream"}, heapStreams},
		{[]string{"runtime.mallocgc", "github.com/quic-go/quic-go.newIncomingStreamsMap[go.shape.*uint8]",
			"github.com/quic-go/quic-go.(*streamsMap).initMaps", "github.com/quic-go/quic-go.newStreamsMap",
			"github.com/quic-go/quic-go.(*Conn).preSetup"}, heapConns},
		{[]string{"github.com/quic-go/quic-go.newCryptoStream", "github.com/quic-go/quic-go.(*Conn).preSetup"}, heapConns},
		{[]string{"github.com/quic-go/quic-go.newStream", "github.com/quic-go/quic-go.(*streamsMap).initMaps.func2",
			"github.com/quic-go/quic-go.(*incomingStreamsMap[go.shape.*uint8]).GetOrOpenStream"}, heapStreams},
		{[]string{"runtime.growslice", "github.com/quic-go/quic-go.(*baseCryptoStream).HandleCryptoFrame",
			"github.com/quic-go/quic-go.(*cryptoStreamManager).HandleCryptoFrame", "github.com/quic-go/quic-go.(*Conn).handleCryptoFrame"}, heapConns},
		{[]string{"crypto/tls.QUICServer", "github.com/quic-go/quic-go/internal/handshake.NewCryptoSetupServer"}, heapConns},
		{[]string{"github.com/anthdm/hollywood/ringbuffer.New[go.shape.struct {}]", "github.com/anthdm/hollywood/actor.NewInbox",
			"github.com/quicpool/quicpool/actors.(*runtime).spawn"}, heapHollywood},
		{[]string{"github.com/quicpool/quicpool/actors.(*idleStreams).addKey", "github.com/quicpool/quicpool/actors.(*coordinator).fileReady"}, heapQuicpool},
		{[]string{"internal/sync.newIndirectNode[go.shape.interface {}]", "sync.(*Map).Store", "github.com/NodePassProject/quic.(*Pool).handleStream"}, heapNodePass},
		{[]string{"runtime.malg", "runtime.newproc1", "runtime.newproc.func1", "runtime.systemstack"}, heapG},
		{[]string{"bytes.growSlice", "crypto/tls.(*Conn).readHandshakeBytes", "crypto/tls.(*Conn).HandshakeContext"}, heapConns},
		{[]string{"runtime.mallocgc", "runtime.allgadd"}, heapOther},
	} {
		if got := heapPart(c.stack); got != c.part {
			t.Errorf("%s: got %q, want %q", c.stack[0], got, c.part)
		}
	}
}

// A memory miss is explained part by part from the heap profiles.
func TestMemoryReasonByPart(t *testing.T) {
	side := func(heap int64, parts map[string]int64) MemSide {
		return MemSide{Idle: 1024, Heap: heap, Parts: parts}
	}
	res := Results{Memory: []MemoryResult{
		{Impl: nameQuicpool, N: 1024,
			Server: side(2800<<10, map[string]int64{heapStreams: 2100 << 10, heapConns: 360 << 10, heapHollywood: 143 << 10, heapQuicpool: 88 << 10}),
			Client: side(2700<<10, map[string]int64{heapStreams: 2100 << 10, heapHollywood: 143 << 10})},
		{Impl: nameNodePass, N: 1024,
			Server: side(2600<<10, map[string]int64{heapStreams: 2095 << 10, heapConns: 170 << 10, heapNodePass: 158 << 10}),
			Client: side(2900<<10, map[string]int64{heapStreams: 2500 << 10})},
		{Impl: nameRawClientOpens, N: 1024, Server: side(2400<<10, nil), Client: side(2200<<10, nil)},
	}}
	got := memoryReason(res)
	want := "The server's heap against NodePass's, by part (section 6; 2691 KiB against 2423 KiB in all in the profiled pair): " +
		"quic-go's connections +190 KiB; hollywood +143 KiB; quicpool +88 KiB; NodePass's own -158 KiB."
	if !strings.Contains(got, want) {
		t.Errorf("reason lacks %q:\n%s", want, got)
	}
	if strings.Contains(got, "client's heap") {
		t.Errorf("the client side, below NodePass's, is explained:\n%s", got)
	}
	if md := heapPartsTable(res.Memory); !strings.Contains(md, "| hollywood (engine registry, actors, inboxes) | 143 KiB | 143 KiB | 0.0 KiB | 0.0 KiB |") {
		t.Errorf("parts table:\n%s", md)
	}
}

// The burst's reason splits the runs by whether a garbage collection ran during them, and the
// table lists every run with its collections; a run that never got back counts in neither.
func TestBurstReasonByCollection(t *testing.T) {
	q := medianBurst([]BurstResult{
		{Impl: nameQuicpool, Takes: 128, Served: 5 * time.Millisecond, Refilled: 7 * time.Millisecond, Refill: true, GCs: 1},
		{Impl: nameQuicpool, Takes: 128, Served: 3 * time.Millisecond, Refilled: 4 * time.Millisecond, Refill: true},
		{Impl: nameQuicpool, Takes: 128, Served: 9 * time.Millisecond, Refill: false, GCs: 2},
		{Impl: nameQuicpool, Takes: 128, Served: 3 * time.Millisecond, Refilled: 3 * time.Millisecond, Refill: true},
	})
	raw := medianBurst([]BurstResult{{Impl: nameRaw, Takes: 128, Served: 2 * time.Millisecond}})
	res := Results{Burst: []BurstResult{q, raw}}
	got := burstReason(res)
	want := "The runs a garbage collection ran during took 7.00ms, the others 3.00ms to 4.00ms (section 2)."
	if !strings.Contains(got, want) {
		t.Errorf("reason lacks %q:\n%s", want, got)
	}
	table := burstTable(Config{Shapes: []Shape{{MinCap: 32, MaxCap: 64}}, BurstReps: 4}, res.Burst)
	if want := "| 7.00ms (1), 4.00ms (0), none (2), 3.00ms (0) |"; !strings.Contains(table, want) {
		t.Errorf("table lacks %q:\n%s", want, table)
	}
}

// A failed run's row has as many cells as its table's header.
func TestFailedRowsFitTheirTables(t *testing.T) {
	cfg := Config{Shapes: []Shape{{MinCap: 32, MaxCap: 64}}, BurstReps: 1}
	tables := map[string]string{
		"wake":  wakeTable([]WakeResult{{Impl: nameQuicpool, Err: "boom"}}),
		"burst": burstTable(cfg, []BurstResult{{Impl: nameQuicpool, Err: "boom"}}),
	}
	for name, md := range tables {
		var header, failed string
		for _, line := range strings.Split(md, "\n") {
			switch {
			case strings.HasPrefix(line, "| Implementation"):
				header = line
			case strings.Contains(line, "failed: boom"):
				failed = line
			}
		}
		if header == "" || failed == "" {
			t.Fatalf("%s table lacks its header or its failed row:\n%s", name, md)
		}
		if h, f := strings.Count(header, "|"), strings.Count(failed, "|"); h != f {
			t.Errorf("%s: the failed row has %d separators, the header %d:\n%s\n%s", name, f, h, header, failed)
		}
	}
}
