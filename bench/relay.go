package main

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
)

// relay is a UDP relay between clients and one target: the network path of the outage and wan
// workloads. Like a NAT, it gives every client address an upstream socket of its own, so the
// target sees one source address per client. While the blackhole is on, every datagram is
// dropped, both ways. A path (newPathRelay, netpath.go) delays and drops datagrams.
type relay struct {
	ln        *net.UDPConn // the socket clients send to
	target    *net.UDPAddr
	blackhole atomic.Bool
	path      atomic.Pointer[netPath] // nil: forward at once

	mu     sync.Mutex
	up     map[string]*net.UDPConn // upstream socket by client address
	closed bool
	wg     sync.WaitGroup
}

// newRelay starts a relay on a fresh loopback port in front of target.
func newRelay(target string) (*relay, error) {
	to, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		return nil, err
	}
	ln, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	_ = ln.SetReadBuffer(4 << 20) // best effort: fewer drops of the bulk transfer's bursts
	r := &relay{ln: ln, target: to, up: map[string]*net.UDPConn{}}
	r.wg.Add(1)
	go r.fromClients()
	return r, nil
}

// Addr is the address clients send to.
func (r *relay) Addr() string { return r.ln.LocalAddr().String() }

// Blackhole drops every datagram, both ways, while on.
func (r *relay) Blackhole(on bool) { r.blackhole.Store(on) }

// Close closes every socket and returns once every goroutine of the relay has ended.
func (r *relay) Close() {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		_ = r.ln.Close()
		for _, up := range r.up {
			_ = up.Close()
		}
	}
	r.mu.Unlock()
	r.wg.Wait()
	if p := r.path.Load(); p != nil {
		p.close()
	}
}

// fromClients forwards datagrams from clients to the target, each through its client's
// upstream socket.
func (r *relay) fromClients() {
	defer r.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, client, err := r.ln.ReadFromUDP(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil || r.blackhole.Load() {
			continue
		}
		if up := r.upstream(client); up != nil {
			r.forward(buf[:n], up, nil)
		}
	}
}

// upstream returns the client's upstream socket, opening it (and its reader) on the client's
// first datagram; nil once the relay is closed.
func (r *relay) upstream(client *net.UDPAddr) *net.UDPConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	if up := r.up[client.String()]; up != nil || r.closed {
		return up
	}
	up, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, r.target)
	if err != nil {
		return nil
	}
	_ = up.SetReadBuffer(4 << 20)
	r.up[client.String()] = up
	r.wg.Add(1) // under mu, closed false: Close has not started waiting
	go r.fromTarget(up, client)
	return up
}

// fromTarget forwards the target's datagrams on one upstream socket back to its client, until
// Close closes the socket.
func (r *relay) fromTarget(up *net.UDPConn, client *net.UDPAddr) {
	defer r.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, err := up.Read(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		// Other errors are an ICMP "port unreachable" from a target that is not listening
		// (reported once per ICMP message on a connected socket): the next read waits again.
		if err != nil || r.blackhole.Load() {
			continue
		}
		r.forward(buf[:n], nil, client)
	}
}
