package main

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// relay is a UDP relay in front of one server, standing for the network path between a client
// and a server. Like a NAT it gives every client address a socket of its own toward the server.
// While dark is set it drops every datagram, both ways: an outage.
type relay struct {
	ln     *net.UDPConn
	target *net.UDPAddr
	dark   atomic.Bool

	mu       sync.Mutex
	upstream map[string]*net.UDPConn // toward the server, by client address
	closed   bool
	wg       sync.WaitGroup
}

// startRelay starts a relay on a free loopback port in front of target; the test's cleanup
// stops it.
func startRelay(t *testing.T, target string) *relay {
	t.Helper()
	to, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, target: to, upstream: map[string]*net.UDPConn{}}
	r.wg.Go(r.fromClients)
	t.Cleanup(r.close)
	return r
}

func (r *relay) addr() string { return r.ln.LocalAddr().String() }

// fromClients forwards every datagram of a client to the server, from the client's socket.
func (r *relay) fromClients() {
	buf := make([]byte, 64<<10)
	for {
		n, client, err := r.ln.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if r.dark.Load() {
			continue
		}
		if up := r.socketFor(client); up != nil {
			_, _ = up.Write(buf[:n])
		}
	}
}

// socketFor returns the client's socket toward the server, opening it and starting its reader
// if there is none; nil once the relay is closed.
func (r *relay) socketFor(client *net.UDPAddr) *net.UDPConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	if up := r.upstream[client.String()]; up != nil || r.closed {
		return up
	}
	up, err := net.DialUDP("udp", nil, r.target)
	if err != nil {
		return nil
	}
	r.upstream[client.String()] = up
	r.wg.Go(func() { // the server's datagrams back to the client
		buf := make([]byte, 64<<10)
		for {
			n, err := up.Read(buf)
			if err != nil {
				return
			}
			if !r.dark.Load() {
				_, _ = r.ln.WriteToUDP(buf[:n], client)
			}
		}
	})
	return up
}

// close closes every socket and waits for the relay's goroutines.
func (r *relay) close() {
	r.mu.Lock()
	r.closed = true
	_ = r.ln.Close()
	for _, up := range r.upstream {
		_ = up.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}
