package main

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// ---------------------------------------------------------------------------------------------
// An emulated wide-area path for the wan workload: a fixed one-way delay and a random loss, on
// the UDP relay (relay.go) and on a TCP relay for the TCP baseline.

// netPath delays every datagram by a fixed one-way delay and drops each with probability loss,
// independently in each direction. A constant delay keeps each direction in order: one FIFO
// delay line per direction.
type netPath struct {
	delay    time.Duration
	loss     float64
	up, down *delayLine
}

func newNetPath(delay time.Duration, loss float64) *netPath {
	return &netPath{delay: delay, loss: loss, up: newDelayLine(), down: newDelayLine()}
}

// send sends b (copied) after the delay, or drops it; upstream tells the direction.
func (p *netPath) send(b []byte, upstream bool, write func([]byte)) {
	if p.loss > 0 && rand.Float64() < p.loss {
		return
	}
	line := p.down
	if upstream {
		line = p.up
	}
	line.push(time.Now().Add(p.delay), append([]byte(nil), b...), write)
}

func (p *netPath) close() {
	p.up.close()
	p.down.close()
}

// delayLine sends each datagram at its due time, in the order pushed. A full line (a sender far
// behind) drops, as a router's queue would.
type delayLine struct {
	ch   chan delayed
	done chan struct{}
	once sync.Once
}

type delayed struct {
	due   time.Time
	b     []byte
	write func([]byte)
}

func newDelayLine() *delayLine {
	l := &delayLine{ch: make(chan delayed, 1<<14), done: make(chan struct{})}
	go l.run()
	return l
}

func (l *delayLine) push(due time.Time, b []byte, write func([]byte)) {
	select {
	case l.ch <- delayed{due, b, write}:
	default: // queue full: dropped
	}
}

func (l *delayLine) run() {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		select {
		case d := <-l.ch:
			if wait := time.Until(d.due); wait > 0 {
				t.Reset(wait)
				select {
				case <-t.C:
				case <-l.done:
					return
				}
			}
			d.write(d.b)
		case <-l.done:
			return
		}
	}
}

func (l *delayLine) close() { l.once.Do(func() { close(l.done) }) }

// forward sends a datagram on, through the relay's path if it has one: from a client to the
// target on up, or from the target back to client on the relay's socket.
func (r *relay) forward(b []byte, up *net.UDPConn, client *net.UDPAddr) {
	if p := r.path.Load(); p != nil {
		p.send(b, up != nil, func(b []byte) { r.write(b, up, client) })
		return
	}
	r.write(b, up, client)
}

func (r *relay) write(b []byte, up *net.UDPConn, client *net.UDPAddr) {
	if up != nil {
		_, _ = up.Write(b)
	} else {
		_, _ = r.ln.WriteToUDP(b, client)
	}
}

// newPathRelay is a relay in front of target whose path delays each datagram by delay (one way)
// and drops each with probability loss.
func newPathRelay(target string, delay time.Duration, loss float64) (*relay, error) {
	r, err := newRelay(target)
	if err != nil {
		return nil, err
	}
	r.path.Store(newNetPath(delay, loss))
	return r, nil
}

// ---------------------------------------------------------------------------------------------
// TCP

// tcpRelay forwards TCP connections to a target over an emulated path with a fixed one-way delay.
// A connection to the relay completes at once on this machine, but over a real path the
// client's first byte leaves only once the handshake's round trip is done: so the relay holds
// the client's data until one round trip after it accepted the connection, then delays every
// chunk by the one-way delay, each direction in order. Loss is not emulated: a byte-stream relay
// cannot drop segments.
type tcpRelay struct {
	ln     net.Listener
	target string
	delay  time.Duration
	wg     sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func newTCPRelay(target string, delay time.Duration) (*tcpRelay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &tcpRelay{ln: ln, target: target, delay: delay, conns: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

func (r *tcpRelay) Addr() string { return r.ln.Addr().String() }

func (r *tcpRelay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		accepted := time.Now()
		up, err := net.DialTimeout("tcp", r.target, 5*time.Second)
		if err != nil {
			_ = c.Close()
			continue
		}
		if !r.track(c, up) {
			return
		}
		p := &relayedConn{client: c, up: up}
		p.left.Store(2)
		r.wg.Add(2)
		go r.pump(p, c, up, accepted.Add(2*r.delay)) // the client's data: after the handshake
		go r.pump(p, up, c, time.Time{})
	}
}

// relayedConn is a client's connection to the relay and the relay's to the target.
type relayedConn struct {
	client, up net.Conn
	left       atomic.Int32 // pumps still running
}

// close closes both ends.
func (p *relayedConn) close() {
	_ = p.client.Close()
	_ = p.up.Close()
}

// track files both ends of a relayed connection, for Close; false once closed.
func (r *tcpRelay) track(cs ...net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		for _, c := range cs {
			_ = c.Close()
		}
		return false
	}
	for _, c := range cs {
		r.conns[c] = struct{}{}
	}
	return true
}

// pump copies from src to dst, each chunk sent at max(its arrival, gate) + delay; src's EOF is
// passed on as a half-close at its due time. A failed write closes both ends; once both
// directions are done, both ends are closed.
func (r *tcpRelay) pump(p *relayedConn, src, dst net.Conn, gate time.Time) {
	defer r.wg.Done()
	defer func() {
		if p.left.Add(-1) == 0 {
			p.close()
			r.mu.Lock()
			delete(r.conns, p.client)
			delete(r.conns, p.up)
			r.mu.Unlock()
		}
	}()
	type chunk struct {
		due time.Time
		b   []byte // nil: EOF
	}
	ch := make(chan chunk, 256)
	go func() {
		defer close(ch)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			at := time.Now()
			if at.Before(gate) {
				at = gate
			}
			if n > 0 {
				ch <- chunk{at.Add(r.delay), buf[:n]}
			}
			if errors.Is(err, io.EOF) {
				ch <- chunk{at.Add(r.delay), nil}
				return
			}
			if err != nil {
				p.close() // reset or closed: nothing more will cross either way
				return
			}
		}
	}()
	for c := range ch {
		time.Sleep(time.Until(c.due))
		if c.b == nil {
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			continue
		}
		if _, err := dst.Write(c.b); err != nil {
			p.close()
			for range ch { // until the reader ends
			}
			return
		}
	}
}

// Close stops accepting, closes every relayed connection and waits for the pumps, at most 5s.
func (r *tcpRelay) Close() {
	_ = r.ln.Close()
	r.mu.Lock()
	r.closed = true
	for c := range r.conns {
		_ = c.Close()
	}
	r.mu.Unlock()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}
