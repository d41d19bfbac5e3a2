package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool"
)

// ---------------------------------------------------------------------------------------------
// 7b. Hostile clients
//
// An attacker written with plain quic-go speaks the pools' handshake to a server pool: it dials
// (keep-alive 1s), opens bidirectional streams, writes 0x00 on each, reads the 4-byte ID and keeps
// every stream open and unread. It binds 127.0.0.2 (and 127.0.0.3 as a second address; Linux
// routes all of 127.0.0.0/8 to loopback), the legitimate client pool 127.0.0.1. Three measurements per pool implementation (raw quic-go
// keeps no pool and is left out):
//
//   - flood first: one attacker connection takes every ID the server issues, then a client pool
//     of the same implementation connects; what share of the server's idle streams it gets, how
//     soon it holds minCap, and whose streams the server's application takes next;
//   - held handshakes: several attacker connections open every stream the server lets them open
//     without waiting for IDs; the server runs in a child process (this program, re-run with
//     -hostilechild) so that its goroutines and heap are its own, and a client pool's tunnel round
//     trip is timed before and under the attack;
//   - slots: the attacker's address (then two addresses) opens as many connections as the server
//     keeps, with no stream, then a client pool connects.
//
// Every operation is bounded and counted: an implementation that hangs costs its bounds, no more.

// attackerIP is the attacker's local address: 127.0.0.2, or for the i-th of several addresses
// 127.0.0.(2+i).
func attackerIP(i int) net.IP { return net.IPv4(127, 0, 0, byte(2+i)) }

// HostileConfig is the hostile workload's counts and bounds.
type HostileConfig struct {
	// Flood first.
	FloodCap     int           // the server's maxCap
	FloodWindow  int           // streams the attacker keeps waiting for an ID at once
	FloodSilence time.Duration // no new ID for this long ends the flood
	FloodBound   time.Duration // the flood ends after this long in any case
	ShareAt      time.Duration // when the attacker's share is read, after the client started
	ClientWait   time.Duration // how long the client may take to hold minCap
	Takes        int           // IncomingGets on the server afterwards, classified by owner
	TakeTimeout  time.Duration // bound of each of those

	// Held handshakes (HoldCap 0: not run).
	HoldCap       int           // the server's maxCap
	HoldAttackers int           // attacker connections
	HoldPerConn   int           // streams each attacker connection opens at most
	HoldWindow    time.Duration // how long the attackers open streams before the ops under attack
	HoldBlocked   time.Duration // an attacker whose open has blocked this long is done opening
	HoldOps       int           // tunnel round trips per measurement
	HoldOpsBound  time.Duration // bound of each measurement's round trips together

	// Slots.
	SlotConns  int           // attacker connections dialed (the server keeps those it keeps)
	SlotWait   time.Duration // how long the client may take to hold minCap
	SlotSettle time.Duration // between the attacker's connections and the client's start
}

// hostileConfig returns the hostile workload's settings for a full or a quick run.
func hostileConfig(quick bool) HostileConfig {
	h := HostileConfig{
		FloodCap: 256, FloodWindow: 64, FloodSilence: 2 * time.Second, FloodBound: 15 * time.Second,
		ShareAt: 5 * time.Second, ClientWait: 15 * time.Second, Takes: 40, TakeTimeout: 2 * time.Second,
		HoldCap: 4096, HoldAttackers: 6, HoldPerConn: 20000, HoldWindow: 20 * time.Second,
		HoldBlocked: 2 * time.Second, HoldOps: 100, HoldOpsBound: 15 * time.Second,
		SlotConns: 8, SlotWait: 20 * time.Second, SlotSettle: time.Second,
	}
	if quick {
		h.FloodSilence, h.FloodBound, h.ShareAt, h.ClientWait = time.Second, 5*time.Second, 2*time.Second, 4*time.Second
		h.HoldCap = 0 // the held-handshakes case runs in full runs only
		h.SlotWait, h.SlotSettle = 4*time.Second, 500*time.Millisecond
	}
	return h
}

// hostileShape is the legitimate client's shape.
func hostileShape() Shape {
	return Shape{MinCap: 64, MaxCap: 256, MinIvl: 100 * time.Millisecond, MaxIvl: time.Second, KeepAlive: 30 * time.Second}
}

// hostileServerShape is the shape a server of the hostile workload is built with.
func hostileServerShape(maxCap int) Shape {
	s := hostileShape()
	s.MaxCap = maxCap
	return s
}

// HostileResult is the hostile workload's result for one implementation.
type HostileResult struct {
	Impl  string
	Flood FloodResult
	Hold  HoldResult
	Slots []SlotResult // from one attacker address, then from two
}

// FloodResult is the flood-first case.
type FloodResult struct {
	Opened      int  // streams the attacker opened
	IDs         int  // IDs it got before the client started
	Control     bool // one of them was the control stream 00000000
	Refused     int  // streams the server closed or reset before an ID, before the client started
	LaterIDs    int  // IDs the attacker got after the client started (held handshakes answered late)
	Taken       int  // attacker streams with an ID that the server closed by ShareAt
	ServerIdle  int  // the server's idle streams at ShareAt (as Active reports them)
	AttackIdle  int  // of those, the attacker's (its streams with an ID still open)
	ClientIdle  int  // the client's idle streams at ShareAt
	Ready       time.Duration
	ReadyOK     bool // the client held minCap within the wait
	Takes       int  // IncomingGets on the server afterwards
	Legit       int  // of those, the client's streams
	Attacker    int  // the attacker's
	Unknown     int  // neither (an ID the client could not find)
	NotServed   int  // IncomingGets that failed (the rest were not tried)
	QuicpoolEnd string
	Err         string
}

// Share is the attacker's share of the server's idle streams at ShareAt (NaN: none idle).
func (f FloodResult) Share() float64 {
	if f.ServerIdle == 0 {
		return math.NaN()
	}
	return min(float64(f.AttackIdle)/float64(f.ServerIdle), 1)
}

// HoldResult is the held-handshakes case.
type HoldResult struct {
	Run                       bool
	MaxCap, Attackers         int
	Opened, IDs, Refused      int // attacker streams: opened, answered with an ID, refused before one
	Dropped                   int // attacker streams the server closed after their ID
	Base, Peak, Settled, Gone ServerMem
	Before, Under             OpsResult
	Err                       string
}

// ServerMem is one reading of the server child: live heap after two GCs, goroutines, idle
// streams, and (quicpool) handshakes waiting for an ID.
type ServerMem struct {
	Goroutines int   `json:"goroutines"`
	Heap       int64 `json:"heap"`
	Idle       int   `json:"idle"`
	Opening    int   `json:"opening"` // quicpool only; -1 elsewhere
	Counters   string
}

// OpsResult is a series of tunnel round trips of the legitimate client through the server child.
type OpsResult struct {
	Ops, Failed int
	P50, Max    time.Duration
	Handouts    int // streams the server's IncomingGet handed out that were the attacker's
	Err         string
}

// SlotResult is the slots case.
type SlotResult struct {
	Addrs       int // attacker addresses
	Conns       int // attacker connections whose dial succeeded
	Failed      int // attacker dials that failed
	Up          int // attacker connections up when the client started
	UpEnd       int // up when the case ended
	Ready       time.Duration
	ReadyOK     bool
	QuicpoolEnd string
	Err         string
}

// runHostile runs the three cases on one implementation.
func runHostile(impl Impl, h HostileConfig) HostileResult {
	r := HostileResult{Impl: impl.Name}
	r.Flood = runFlood(impl, h)
	logf("hostile %s flood: %d IDs before the client (control %v, %d refused), share %d/%d, client ready %v after %s, "+
		"later IDs %d, takes %d legit/%d attacker/%d unknown/%d not served %s %s", impl.Name, r.Flood.IDs, r.Flood.Control,
		r.Flood.Refused, r.Flood.AttackIdle, r.Flood.ServerIdle, r.Flood.ReadyOK, dur(r.Flood.Ready), r.Flood.LaterIDs,
		r.Flood.Legit, r.Flood.Attacker, r.Flood.Unknown, r.Flood.NotServed, r.Flood.QuicpoolEnd, r.Flood.Err)
	settle()
	if h.HoldCap > 0 {
		r.Hold = runHold(impl, h)
		logf("hostile %s hold: %d streams opened, %d IDs, %d refused; server %+v -> peak %+v -> settled %+v -> gone %+v; "+
			"p50 %s (%d ops, %d failed) -> %s (%d ops, %d failed, %d attacker hand-outs) %s", impl.Name, r.Hold.Opened,
			r.Hold.IDs, r.Hold.Refused, r.Hold.Base, r.Hold.Peak, r.Hold.Settled, r.Hold.Gone, dur(r.Hold.Before.P50),
			r.Hold.Before.Ops, r.Hold.Before.Failed, dur(r.Hold.Under.P50), r.Hold.Under.Ops, r.Hold.Under.Failed,
			r.Hold.Under.Handouts, r.Hold.Err)
		settle()
	}
	for _, addrs := range []int{1, 2} {
		s := runSlots(impl, h, addrs)
		logf("hostile %s slots from %d address(es): %d attacker connections (%d dials failed), %d up at the client's start, "+
			"%d at the end; client ready %v after %s %s %s", impl.Name, addrs, s.Conns, s.Failed, s.Up, s.UpEnd, s.ReadyOK,
			dur(s.Ready), s.QuicpoolEnd, s.Err)
		r.Slots = append(r.Slots, s)
		settle()
	}
	return r
}

// ---------------------------------------------------------------------------------------------
// The attacker

// attacker is one hostile QUIC connection from an attackerIP, with what it got.
type attacker struct {
	conn    *quic.Conn
	tr      *quic.Transport
	udp     *net.UDPConn
	closing atomic.Bool
	wg      sync.WaitGroup

	opened, refused, dropped atomic.Int64
	pending                  atomic.Int64 // streams waiting for their ID
	alive                    atomic.Int64 // streams with an ID the server has not closed
	controlAlive             atomic.Bool
	lastID                   atomic.Int64 // unix nanoseconds of the last ID received
	lastOpen                 atomic.Int64 // unix nanoseconds of the last stream opened

	mu  sync.Mutex
	ids map[string]time.Time // every ID received, when
}

// dialAttacker dials addr from a socket of its own on local.
func dialAttacker(addr string, local net.IP) (*attacker, error) {
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: local})
	if err != nil {
		return nil, err
	}
	tr := &quic.Transport{Conn: udp}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := tr.Dial(ctx, raddr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{quicpool.ALPN},
		MinVersion: tls.VersionTLS13}, &quic.Config{KeepAlivePeriod: time.Second, MaxIdleTimeout: 30 * time.Second})
	if err != nil {
		_ = tr.Close()
		_ = udp.Close()
		return nil, err
	}
	a := &attacker{conn: conn, tr: tr, udp: udp, ids: map[string]time.Time{}}
	a.lastID.Store(time.Now().UnixNano())
	a.lastOpen.Store(time.Now().UnixNano())
	return a, nil
}

// handshake writes the handshake byte on a stream the attacker opened, waits up to idWait for
// its ID, and then keeps the stream, unread, until the server closes it or the attacker goes.
func (a *attacker) handshake(s *quic.Stream, idWait time.Duration) {
	defer a.wg.Done()
	_ = s.SetWriteDeadline(time.Now().Add(5 * time.Second))
	var raw [4]byte
	_, err := s.Write([]byte{0})
	if err == nil {
		_ = s.SetReadDeadline(time.Now().Add(idWait))
		_, err = io.ReadFull(s, raw[:])
	}
	a.pending.Add(-1)
	if err != nil {
		if !a.closing.Load() {
			a.refused.Add(1)
		}
		s.CancelRead(0) // a refused stream is given up, so that its credit comes back
		s.CancelWrite(0)
		return
	}
	id := hex.EncodeToString(raw[:])
	a.mu.Lock()
	a.ids[id] = time.Now()
	a.mu.Unlock()
	a.alive.Add(1)
	control := id == quicpool.ControlID
	if control {
		a.controlAlive.Store(true)
	}
	a.lastID.Store(time.Now().UnixNano())
	_ = s.SetReadDeadline(time.Time{})
	var b [1]byte
	_, _ = s.Read(b[:]) // returns when the server closes or resets the stream, or the attacker goes
	s.CancelRead(0)     // then the attacker lets it go too, so that its credit comes back
	s.CancelWrite(0)
	a.alive.Add(-1)
	if control {
		a.controlAlive.Store(false)
	}
	if !a.closing.Load() {
		a.dropped.Add(1)
	}
}

// open opens one stream, waiting up to wait for the server's stream credit, and handshakes it
// in a goroutine of its own.
func (a *attacker) open(ctx context.Context, wait, idWait time.Duration) error {
	octx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	s, err := a.conn.OpenStreamSync(octx)
	if err != nil {
		return err
	}
	a.opened.Add(1)
	a.lastOpen.Store(time.Now().UnixNano())
	a.wg.Add(1)
	a.pending.Add(1) // here, not in the goroutine, so that the flood's window holds
	go a.handshake(s, idWait)
	return nil
}

func (a *attacker) idCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.ids)
}

func (a *attacker) owns(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.ids[id]
	return ok
}

func (a *attacker) idsSince(t time.Time) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, at := range a.ids {
		if !at.Before(t) {
			n++
		}
	}
	return n
}

func (a *attacker) up() bool { return a.conn.Context().Err() == nil }

// close closes the connection and waits (at most 10s) for the stream goroutines.
func (a *attacker) close() {
	a.closing.Store(true)
	_ = a.conn.CloseWithError(0, "bye")
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
	_ = a.tr.Close()
	_ = a.udp.Close()
}

// quicpoolCounters summarises a quicpool server's own counters ("" for other pools).
func quicpoolCounters(p Pool) string {
	qp, ok := p.(*quicpool.Pool)
	if !ok {
		return ""
	}
	st := qp.Stats()
	var conns []string
	for _, c := range st.Conns {
		conns = append(conns, fmt.Sprintf("%s:%d", c.Remote, c.Idle))
	}
	return fmt.Sprintf("idle %d, handshakes waiting %d, discarded %d, failed %d, refused conns %d, conns [%s]",
		st.Idle, st.Opening, st.Discarded, st.Failed, st.Refused, strings.Join(conns, " "))
}

// ---------------------------------------------------------------------------------------------
// Flood first

func runFlood(impl Impl, h HostileConfig) FloodResult {
	var r FloodResult
	shape := hostileShape()
	addr, err := freeAddr()
	if err != nil {
		r.Err = err.Error()
		return r
	}
	server, err := impl.NewServer(hostileServerShape(h.FloodCap), addr)
	if err != nil {
		r.Err = "server: " + err.Error()
		return r
	}
	defer boundedClose(server)
	a, err := dialAttacker(addr, attackerIP(0))
	if err != nil {
		r.Err = "attacker: " + err.Error()
		return r
	}
	defer a.close()

	// Open streams, at most FloodWindow waiting for an ID at once, until no ID has come for
	// FloodSilence. Streams still waiting stay open (a server may answer them later).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	idWait := h.FloodBound + h.ClientWait + time.Minute
	start := time.Now()
	for time.Since(start) < h.FloodBound && a.opened.Load() < int64(8*h.FloodCap+4096) {
		if time.Since(time.Unix(0, a.lastID.Load())) > h.FloodSilence {
			break
		}
		if a.pending.Load() >= int64(h.FloodWindow) {
			time.Sleep(time.Millisecond)
			continue
		}
		if err := a.open(ctx, h.FloodSilence, idWait); err != nil {
			if !a.up() {
				r.Err = "attacker connection closed: " + err.Error()
				return r
			}
			break // no stream credit for FloodSilence
		}
	}
	r.Opened, r.IDs, r.Refused = int(a.opened.Load()), a.idCount(), int(a.refused.Load())
	r.Control = a.owns(quicpool.ControlID)

	clientStart := time.Now()
	client, err := impl.NewClient(shape, addr)
	if err != nil {
		r.Err = "client: " + err.Error()
		return r
	}
	defer boundedClose(client)
	shareRead := false
	for {
		t := time.Since(clientStart)
		if !r.ReadyOK && client.Active() >= shape.MinCap {
			r.Ready, r.ReadyOK = t, true
		}
		if !shareRead && t >= h.ShareAt {
			shareRead = true
			r.ServerIdle, r.ClientIdle = server.Active(), client.Active()
			r.AttackIdle = int(a.alive.Load())
			if impl.Name == nameQuicpool && a.controlAlive.Load() {
				r.AttackIdle-- // quicpool's Active does not count the control stream; the others' do
			}
			r.Taken = int(a.dropped.Load())
		}
		if shareRead && (r.ReadyOK || t >= h.ClientWait) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !r.ReadyOK {
		r.Ready = h.ClientWait
	}
	r.LaterIDs = a.idsSince(clientStart)

	// The server's application takes streams: whose are they?
	for i := range h.Takes {
		id, sc, err := server.IncomingGet(h.TakeTimeout)
		if err != nil {
			r.NotServed = h.Takes - i
			break
		}
		r.Takes++
		if a.owns(id) {
			r.Attacker++
			abort(sc)
			continue
		}
		cc, err := client.OutgoingGet(id, time.Second)
		switch {
		case err == nil:
			r.Legit++
			abort(cc)
		case a.owns(id): // its ID arrived at the attacker only now
			r.Attacker++
		default:
			r.Unknown++
		}
		abort(sc)
	}
	if _, ok := server.(*quicpool.Pool); ok {
		time.Sleep(500 * time.Millisecond) // the refill after the takes
		r.QuicpoolEnd = quicpoolCounters(server)
	}
	return r
}

// ---------------------------------------------------------------------------------------------
// Held handshakes

// serverChild is the held-handshakes server in its child process, driven over its stdin.
type serverChild struct {
	*child
	mu sync.Mutex // one command and its answer at a time
}

// ask sends a command and waits for the answer line that starts with prefix.
func (c *serverChild) ask(cmd, prefix string, wait time.Duration) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.askLocked(cmd, prefix, wait)
}

func (c *serverChild) askLocked(cmd, prefix string, wait time.Duration) (string, error) {
	if _, err := io.WriteString(c.stdin, cmd+"\n"); err != nil {
		return "", err
	}
	if prefix == "" {
		return "", nil
	}
	l, err := c.line(prefix, wait)
	if err != nil {
		return "", err
	}
	rest := strings.TrimPrefix(l, prefix)
	if msg, ok := strings.CutPrefix(rest, "err "); ok {
		return "", errors.New(msg)
	}
	return rest, nil
}

// mem reads the child's heap and goroutines (after two GCs there).
func (c *serverChild) mem() (ServerMem, error) {
	l, err := c.ask("stats", "stats ", 30*time.Second)
	if err != nil {
		return ServerMem{}, err
	}
	var m ServerMem
	err = json.Unmarshal([]byte(l), &m)
	return m, err
}

// ops runs n tunnel round trips of the client through the child, one at a time, within bound:
// the child takes a stream with IncomingGet and says its ID; a stream of an attacker is reset
// there and the take repeated (a hand-out, counted); the client takes the stream with
// OutgoingGet(id), writes 1 KiB, half-closes and reads the child's echo to EOF.
func (c *serverChild) ops(client Pool, n int, bound time.Duration, owns func(string) bool) OpsResult {
	var r OpsResult
	var lat []time.Duration
	deadline := time.Now().Add(bound)
	for range n {
		if time.Now().After(deadline) {
			break
		}
		d, handouts, err := c.op(client, owns)
		r.Handouts += handouts
		if err != nil {
			r.Failed++
			r.Err = err.Error()
			continue
		}
		r.Ops++
		lat = append(lat, d)
	}
	r.P50 = percentile(lat, 0.5)
	if len(lat) > 0 {
		r.Max = slices.Max(lat)
	}
	return r
}

func (c *serverChild) op(client Pool, owns func(string) bool) (time.Duration, int, error) {
	const timeout = 2 * time.Second
	c.mu.Lock()
	defer c.mu.Unlock()
	start := time.Now()
	handouts := 0
	for {
		if time.Since(start) > 2*timeout {
			return 0, handouts, fmt.Errorf("no stream of the client handed out within %v", 2*timeout)
		}
		id, err := c.askLocked(fmt.Sprintf("take %d", timeout.Milliseconds()), "take ", timeout+time.Second)
		if err != nil {
			return 0, handouts, fmt.Errorf("IncomingGet: %w", err)
		}
		if owns(id) {
			handouts++
			if _, err := c.askLocked("drop", "", 0); err != nil {
				return 0, handouts, err
			}
			continue
		}
		if _, err := c.askLocked("echo", "", 0); err != nil {
			return 0, handouts, err
		}
		cc, err := client.OutgoingGet(id, timeout)
		if err != nil {
			return 0, handouts, fmt.Errorf("OutgoingGet: %w", err)
		}
		if err := echoExchange(cc, timeout); err != nil {
			return 0, handouts, err
		}
		return time.Since(start), handouts, nil
	}
}

// echoExchange writes 1 KiB on c, half-closes and reads the echo to EOF, within timeout.
func echoExchange(c net.Conn, timeout time.Duration) error {
	_ = c.SetDeadline(time.Now().Add(timeout))
	err := func() error {
		if _, err := c.Write(payload); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if err := halfClose(c); err != nil {
			return fmt.Errorf("half-close: %w", err)
		}
		var buf [2048]byte
		got, err := readToEOF(c, buf[:])
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if got != int64(len(payload)) {
			return fmt.Errorf("read %d bytes, want %d", got, len(payload))
		}
		return nil
	}()
	if err != nil {
		abort(c)
		return err
	}
	_ = c.Close()
	return nil
}

func runHold(impl Impl, h HostileConfig) HoldResult {
	r := HoldResult{Run: true, MaxCap: h.HoldCap, Attackers: h.HoldAttackers}
	shape := hostileShape()
	exe, err := os.Executable()
	if err != nil {
		r.Err = err.Error()
		return r
	}
	addr, err := freeAddr()
	if err != nil {
		r.Err = err.Error()
		return r
	}
	proc, err := startProcess(exe, "-hostilechild", fmt.Sprintf("%s|%s|%d", impl.Name, addr, h.HoldCap))
	if err != nil {
		r.Err = err.Error()
		return r
	}
	srv := &serverChild{child: proc}
	defer srv.stop()
	if _, err := srv.line("listening", 15*time.Second); err != nil {
		r.Err = "server: " + err.Error()
		return r
	}
	client, err := impl.NewClient(shape, addr)
	if err != nil {
		r.Err = "client: " + err.Error()
		return r
	}
	defer boundedClose(client)
	// The control stream on both sides, as NodePass's application takes it.
	control, err := client.OutgoingGet(quicpool.ControlID, setupWait)
	if err != nil {
		r.Err = "client control stream: " + err.Error()
		return r
	}
	defer abort(control)
	if _, err := srv.ask("control", "control ", setupWait); err != nil {
		r.Err = "server control stream: " + err.Error()
		return r
	}
	deadline := time.Now().Add(setupWait)
	for client.Active() < shape.MinCap {
		if time.Now().After(deadline) {
			r.Err = fmt.Sprintf("the client holds %d idle streams, not %d, after %v", client.Active(), shape.MinCap, setupWait)
			return r
		}
		time.Sleep(5 * time.Millisecond)
	}
	var attackers []*attacker
	owns := func(id string) bool {
		return slices.ContainsFunc(attackers, func(a *attacker) bool { return a.owns(id) })
	}
	if r.Base, err = srv.mem(); err != nil {
		r.Err = "server stats: " + err.Error()
		return r
	}
	r.Before = srv.ops(client, h.HoldOps, h.HoldOpsBound, owns)

	// The attack: every attacker connection opens streams as long as the server gives it credit,
	// each handshaken in a goroutine of its own, until the ops under attack are done.
	for range h.HoldAttackers {
		a, err := dialAttacker(addr, attackerIP(0))
		if err != nil {
			r.Err = "attacker: " + err.Error()
			break
		}
		attackers = append(attackers, a)
	}
	defer func() {
		for _, a := range attackers {
			a.close()
		}
	}()
	ctx, stopOpening := context.WithCancel(context.Background())
	defer stopOpening()
	var openers sync.WaitGroup
	for _, a := range attackers {
		openers.Go(func() {
			for a.opened.Load() < int64(h.HoldPerConn) && ctx.Err() == nil {
				if err := a.open(ctx, h.HoldWindow, time.Hour); err != nil {
					if !a.up() {
						return
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() { // the peak: the child's state every second
		defer close(sampled)
		for {
			select {
			case <-stopSampling:
				return
			case <-time.After(time.Second):
			}
			m, err := srv.mem()
			if err != nil {
				continue
			}
			r.Peak.Goroutines = max(r.Peak.Goroutines, m.Goroutines)
			r.Peak.Heap = max(r.Peak.Heap, m.Heap)
			r.Peak.Idle = max(r.Peak.Idle, m.Idle)
			r.Peak.Opening = max(r.Peak.Opening, m.Opening)
		}
	}()
	start := time.Now()
	for time.Since(start) < h.HoldWindow { // until the window ends or every attacker is blocked
		blocked := 0
		for _, a := range attackers {
			if !a.up() || a.opened.Load() >= int64(h.HoldPerConn) ||
				time.Since(time.Unix(0, a.lastOpen.Load())) > h.HoldBlocked {
				blocked++
			}
		}
		if blocked == len(attackers) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.Under = srv.ops(client, h.HoldOps, h.HoldOpsBound, owns)
	stopOpening()
	openers.Wait()
	close(stopSampling)
	<-sampled
	for _, a := range attackers {
		r.Opened += int(a.opened.Load())
		r.IDs += a.idCount()
		r.Refused += int(a.refused.Load())
		r.Dropped += int(a.dropped.Load())
	}
	time.Sleep(2 * time.Second)
	if r.Settled, err = srv.mem(); err != nil {
		r.Err = "server stats: " + err.Error()
	}
	for _, a := range attackers {
		a.close()
	}
	attackers = nil
	time.Sleep(3 * time.Second)
	if r.Gone, err = srv.mem(); err != nil {
		r.Err = "server stats: " + err.Error()
	}
	return r
}

// hostileChild is the -hostilechild mode: the held-handshakes server, "impl|addr|maxCap". It
// prints "listening" once its pool runs, then answers commands on stdin, one a line:
//
//	stats       "stats {json}": heap and goroutines after two GCs, idle streams
//	control     "control ok": the control stream taken with OutgoingGet and held
//	take <ms>   "take <id>": a stream taken with IncomingGet and held
//	echo        the held stream is echoed (bounded by 5s) in a goroutine
//	drop        the held stream is reset both ways
//
// Errors answer "<command> err <message>". It exits when its stdin closes.
func hostileChild(arg string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "hostilechild:", err)
		os.Exit(1)
	}
	f := strings.Split(arg, "|")
	if len(f) != 3 {
		fail(fmt.Errorf("want impl|addr|maxCap, got %q", arg))
	}
	impl, ok := implByName(f[0])
	if !ok {
		fail(fmt.Errorf("unknown implementation %q", f[0]))
	}
	maxCap, err := strconv.Atoi(f[2])
	if err != nil {
		fail(err)
	}
	server, err := impl.NewServer(hostileServerShape(maxCap), f[1])
	if err != nil {
		fail(err)
	}
	fmt.Println("listening")
	var held net.Conn
	var control []net.Conn // held until the child exits
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "stats":
			heap, g := settledHeap()
			m := ServerMem{Goroutines: g, Heap: heap, Idle: server.Active(), Opening: -1}
			if qp, ok := server.(*quicpool.Pool); ok {
				m.Opening = qp.Stats().Opening
			}
			out, _ := json.Marshal(m)
			fmt.Printf("stats %s\n", out)
		case "control":
			c, err := server.OutgoingGet(quicpool.ControlID, setupWait)
			if err != nil {
				fmt.Printf("control err %s\n", oneLine(err))
				continue
			}
			control = append(control, c)
			fmt.Println("control ok")
		case "take":
			abort(held)
			held = nil
			ms, _ := strconv.Atoi(arg)
			id, c, err := server.IncomingGet(time.Duration(ms) * time.Millisecond)
			if err != nil {
				fmt.Printf("take err %s\n", oneLine(err))
				continue
			}
			held = c
			fmt.Printf("take %s\n", id)
		case "echo":
			if held != nil {
				c := held
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				go echo(c)
			}
			held = nil
		case "drop":
			abort(held)
			held = nil
		}
	}
	os.Exit(0) // no Close: NodePass's Close races with its manager
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", " ") }

// ---------------------------------------------------------------------------------------------
// Slots

// runSlots dials h.SlotConns attacker connections from each of addrs addresses, then starts the
// client.
func runSlots(impl Impl, h HostileConfig, addrs int) SlotResult {
	r := SlotResult{Addrs: addrs}
	shape := hostileShape()
	addr, err := freeAddr()
	if err != nil {
		r.Err = err.Error()
		return r
	}
	server, err := impl.NewServer(hostileServerShape(h.FloodCap), addr)
	if err != nil {
		r.Err = "server: " + err.Error()
		return r
	}
	defer boundedClose(server)
	var attackers []*attacker
	defer func() {
		for _, a := range attackers {
			a.close()
		}
	}()
	for i := range addrs * h.SlotConns {
		a, err := dialAttacker(addr, attackerIP(i/h.SlotConns))
		if err != nil {
			r.Failed++ // refused in its handshake
			continue
		}
		attackers = append(attackers, a)
	}
	r.Conns = len(attackers)
	time.Sleep(h.SlotSettle)
	upCount := func() int {
		n := 0
		for _, a := range attackers {
			if a.up() {
				n++
			}
		}
		return n
	}
	r.Up = upCount()
	start := time.Now()
	client, err := impl.NewClient(shape, addr)
	if err != nil {
		r.Err = "client: " + err.Error()
		return r
	}
	defer boundedClose(client)
	for time.Since(start) < h.SlotWait {
		if client.Active() >= shape.MinCap {
			r.Ready, r.ReadyOK = time.Since(start), true
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !r.ReadyOK {
		r.Ready = h.SlotWait
	}
	r.UpEnd = upCount()
	r.QuicpoolEnd = quicpoolCounters(server)
	return r
}

// ---------------------------------------------------------------------------------------------
// Report

func hostileTable(cfg Config, rs []HostileResult) string {
	if len(rs) == 0 {
		return ""
	}
	h := hostileConfig(cfg.Quick)
	var b strings.Builder
	fmt.Fprintf(&b, "## 7b. Hostile clients\n\nAn attacker written with plain quic-go (from 127.0.0.2, keep-alive 1s) speaks the "+
		"pools' handshake to a server pool of each implementation: it opens bidirectional streams, writes 0x00 on each, "+
		"reads the 4-byte ID and keeps every stream open and unread (a stream the server refuses or closes, it resets in "+
		"turn, so that its stream credit comes back). The legitimate client is a client pool of the same "+
		"implementation from 127.0.0.1, minCap/maxCap 64/256. Every wait is bounded and what runs out is reported as such; "+
		"raw quic-go keeps no pool and is left out.\n\n")
	fmt.Fprintf(&b, "### Flood first\n\nServer maxCap %d (%d of quicpool's 128-stream shards). One attacker connection opens "+
		"streams, at most %d waiting for an ID at once, until no ID has come for %s (streams still waiting stay open); "+
		"then the client pool starts. *Attacker's share*: of the server's idle streams (`Active()`), those that are "+
		"the attacker's streams it still holds an ID for, %s after the client started; *client idle then*: the "+
		"client pool's `Active()` at that moment, and in brackets the server's idle streams that are not the "+
		"attacker's (a client may count streams its server no longer holds). *Client at minCap*: until the "+
		"client pool's `Active()` reached 64, waiting at most %s. *Next %d taken*: the server's `IncomingGet` (bounded "+
		"by %s each; the first that fails ends the series) then classifies each stream by its ID: the attacker's, or "+
		"found by the client's `OutgoingGet(id)`.\n\n",
		h.FloodCap, (h.FloodCap+quicpool.StreamsPerShard-1)/quicpool.StreamsPerShard, h.FloodWindow, dur(h.FloodSilence),
		dur(h.ShareAt), dur(h.ClientWait), h.Takes, dur(h.TakeTimeout))
	b.WriteString("| Implementation | Attacker's IDs before the client | Control stream to the attacker | Refused before | " +
		"Attacker's share | Attacker's streams the server closed by then | Client idle then (of them on the server) | Attacker's IDs after | " +
		"Client at minCap | Next taken: client's |\n|---|---:|---|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rs {
		f := r.Flood
		if f.Err != "" {
			fmt.Fprintf(&b, "| %s | failed: %s | | | | | | | | |\n", r.Impl, cell(f.Err))
			continue
		}
		share := "no idle streams"
		if s := f.Share(); !math.IsNaN(s) {
			share = fmt.Sprintf("%.0f%% (%d of %d)", 100*s, f.AttackIdle, f.ServerIdle)
		}
		ready := "never (" + dur(h.ClientWait) + ")"
		if f.ReadyOK {
			ready = dur(f.Ready)
		}
		taken := fmt.Sprintf("%d of %d", f.Legit, f.Takes)
		if f.Unknown > 0 {
			taken += fmt.Sprintf(" (%d of neither)", f.Unknown)
		}
		if f.NotServed > 0 {
			taken += fmt.Sprintf("; %d not served", f.NotServed)
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %d | %s | %d | %d (%d) | %d | %s | %s |\n", r.Impl, f.IDs, yesNo(f.Control), f.Refused,
			share, f.Taken, f.ClientIdle, max(f.ServerIdle-f.AttackIdle, 0), f.LaterIDs, ready, taken)
	}
	b.WriteString("\n")

	if h.HoldCap > 0 {
		fmt.Fprintf(&b, "### Held handshakes\n\nServer maxCap %d (%d of quicpool's shards) in a child process that takes streams "+
			"on command over a pipe. A client pool connects first and fills to minCap; the control stream is taken on both "+
			"sides. *Round trip*: the median of up to %d tunnel ops one at a time (the child's `IncomingGet`, the client's "+
			"`OutgoingGet(id)`, 1 KiB written, half-close, the child's echo read to EOF; two pipe hops included, so compare "+
			"within a row, not with the tunnel table), within %s; a stream the child's `IncomingGet` hands out that is the "+
			"attacker's is reset and the take repeated (*attacker hand-outs*: a real tunnel would have failed that "+
			"connection). Then %d attacker connections each open streams as long as the server gives them credit (at most "+
			"%d each), writing 0x00 on each without waiting for the ID; the ops under attack start once every attacker "+
			"has opened that many or been unable to open a stream for %s, or after %s, and the attackers keep opening "+
			"meanwhile. The child's goroutines and live heap (after two GCs): *before* the attack, *peak* (read every "+
			"second during it), *settled* (2s after the attackers stopped opening, all their streams still held) and "+
			"*gone* (3s after the attackers closed their connections; Go keeps the descriptor of every goroutine that "+
			"ever ran at once, a few hundred bytes each, so a burst of goroutines leaves heap behind).\n\n",
			h.HoldCap, (h.HoldCap+quicpool.StreamsPerShard-1)/quicpool.StreamsPerShard, h.HoldOps, dur(h.HoldOpsBound),
			h.HoldAttackers, h.HoldPerConn, dur(h.HoldBlocked), dur(h.HoldWindow))
		b.WriteString("| Implementation | Attacker streams opened / got an ID / refused before it / closed after it (the ops' resets included) | " +
			"Goroutines before → peak → settled → gone | Heap before → peak → settled → gone | " +
			"Server idle before → peak → settled → gone | Round trip p50 (max) before | Under attack | " +
			"Ops under attack (failed) | Attacker hand-outs |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, r := range rs {
			o := r.Hold
			if !o.Run {
				continue
			}
			if o.Err != "" && o.Base.Goroutines == 0 {
				fmt.Fprintf(&b, "| %s | failed: %s | | | | | | | |\n", r.Impl, cell(o.Err))
				continue
			}
			p50 := func(o OpsResult) string {
				if o.Ops == 0 {
					return "none served"
				}
				return fmt.Sprintf("%s (%s)", dur(o.P50), dur(o.Max))
			}
			fmt.Fprintf(&b, "| %s | %d / %d / %d / %d | %d → %d → %d → %d | %s → %s → %s → %s | %d → %d → %d → %d | %s | %s | %d (%d) | %d |\n",
				r.Impl, o.Opened, o.IDs, o.Refused, o.Dropped,
				o.Base.Goroutines, o.Peak.Goroutines, o.Settled.Goroutines, o.Gone.Goroutines,
				bytes(float64(o.Base.Heap)), bytes(float64(o.Peak.Heap)), bytes(float64(o.Settled.Heap)), bytes(float64(o.Gone.Heap)),
				o.Base.Idle, o.Peak.Idle, o.Settled.Idle, o.Gone.Idle, p50(o.Before), p50(o.Under), o.Under.Ops, o.Under.Failed,
				o.Under.Handouts)
		}
		for _, r := range rs {
			if r.Hold.Run && r.Hold.Peak.Opening >= 0 && r.Impl == nameQuicpool {
				fmt.Fprintf(&b, "\nquicpool's server held up to %d handshaken streams waiting for an ID at once (its own "+
					"`Stats().Opening`, read with the peak).\n", r.Hold.Peak.Opening)
			}
			if r.Hold.Err != "" && r.Hold.Base.Goroutines != 0 {
				fmt.Fprintf(&b, "\n%s: %s\n", r.Impl, cell(r.Hold.Err))
			}
		}
		b.WriteString("\n")
	} else {
		b.WriteString("### Held handshakes\n\nNot run: the held-handshakes case (server maxCap 4096, 6 attacker connections) " +
			"runs in full runs only.\n\n")
	}

	fmt.Fprintf(&b, "### Slots\n\nServer maxCap %d (%d of quicpool's 128-stream shards). The attacker's address (127.0.0.2; "+
		"in the second row of each implementation also 127.0.0.3) dials %d connections from each address, one after the "+
		"other, with keep-alive "+
		"and no stream, so that the server keeps as many as it keeps (*kept*: those still up); %s later the client "+
		"pool starts. *Client at minCap*: until its `Active()` reached 64, waiting at most %s.\n\n",
		h.FloodCap, (h.FloodCap+quicpool.StreamsPerShard-1)/quicpool.StreamsPerShard, h.SlotConns, dur(h.SlotSettle), dur(h.SlotWait))
	b.WriteString("| Implementation | Attacker addresses | Attacker dials that succeeded (failed) | Kept when the client started | " +
		"Kept at the end | Client at minCap |\n|---|---:|---:|---:|---:|---:|\n")
	for _, r := range rs {
		for _, s := range r.Slots {
			if s.Err != "" {
				fmt.Fprintf(&b, "| %s | %d | failed: %s | | | |\n", r.Impl, s.Addrs, cell(s.Err))
				continue
			}
			ready := "never (" + dur(h.SlotWait) + ")"
			if s.ReadyOK {
				ready = dur(s.Ready)
			}
			fmt.Fprintf(&b, "| %s | %d | %d (%d) | %d | %d | %s |\n", r.Impl, s.Addrs, s.Conns, s.Failed, s.Up, s.UpEnd, ready)
		}
	}
	b.WriteString("\n")
	for _, r := range rs {
		if r.Impl != nameQuicpool {
			continue
		}
		if r.Flood.QuicpoolEnd != "" {
			fmt.Fprintf(&b, "quicpool's server at the end of *flood first*: %s.\n\n", r.Flood.QuicpoolEnd)
		}
		for _, s := range r.Slots {
			if s.QuicpoolEnd != "" {
				fmt.Fprintf(&b, "quicpool's server at the end of *slots* from %d address(es): %s.\n\n", s.Addrs, s.QuicpoolEnd)
			}
		}
	}
	return b.String()
}

func yesNo(v bool) string {
	if v {
		return "yes"
	}
	return "no"
}
