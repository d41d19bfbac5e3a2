package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"

	npquic "github.com/NodePassProject/quic"
	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool"
	vquic "github.com/vistone/quic"
)

// Pool is what the workloads need of one side (server or client) of a stream pool. quicpool,
// NodePass and vistone pools satisfy it as they are; raw quic-go gets a thin adapter.
type Pool interface {
	IncomingGet(timeout time.Duration) (string, net.Conn, error)
	OutgoingGet(id string, timeout time.Duration) (net.Conn, error)
	Active() int
	Capacity() int
	Close()
}

// healthChecked is the part of NodePass's API its application uses for its health check: count
// errors, and flush the pool when there are more errors than half the idle streams.
type healthChecked interface {
	AddError()
	ErrorCount() int
	ResetError()
	Flush()
}

// Shape is the arguments every implementation is built with.
type Shape struct {
	MinCap, MaxCap int           // client capacity range; the server's maxCap is MaxCap
	MinIvl, MaxIvl time.Duration // client refill interval range
	KeepAlive      time.Duration // both sides; the idle timeout is 3x
}

func (s Shape) String() string { return fmt.Sprintf("%d/%d", s.MinCap, s.MaxCap) }

// Impl is one implementation under test.
type Impl struct {
	Name string
	// Pooled is false for raw quic-go, which opens a fresh stream per operation: it has no idle
	// streams to fill, no control stream and no state accessors.
	Pooled bool
	// NewServer starts a server pool listening on addr; NewClient starts a client pool dialing
	// addr. Both return once the pool's manager runs.
	NewServer func(s Shape, addr string) (Pool, error)
	NewClient func(s Shape, addr string) (Pool, error)
}

// The names of the implementations, as the tables print them.
const (
	nameQuicpool = "quicpool"
	nameNodePass = "NodePass v1.1.1"
	nameVistone  = "vistone v1.0.0"
	nameRaw      = "raw quic-go"
	// nameRawClientOpens is raw quic-go with the client opening each stream (rawClientOpensImpl).
	nameRawClientOpens = "raw quic-go (client opens)"
)

// impls returns every implementation, in the order the tables list them.
func impls() []Impl {
	return []Impl{quicpoolImpl(), nodePassImpl(), vistoneImpl(), rawImpl()}
}

// implByName returns the implementation with the given name.
func implByName(name string) (Impl, bool) {
	for _, i := range append(impls(), rawClientOpensImpl()) {
		if i.Name == name {
			return i, true
		}
	}
	return Impl{}, false
}

// serverTLS is the certificate every server presents (clients use TLS code "1": encrypted,
// fingerprint not checked here). It is made once per process.
var serverTLS = mustSelfSigned()

func mustSelfSigned() *tls.Config {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// freeAddr returns a loopback UDP address that was free a moment ago. NodePass and vistone need
// a fixed listen address, and the recovery workload restarts a server on the same one.
func freeAddr() (string, error) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return "", err
	}
	addr := c.LocalAddr().String()
	return addr, c.Close()
}

// quicStream returns the QUIC stream under a connection any implementation handed out.
func quicStream(c net.Conn) *quic.Stream {
	switch c := c.(type) {
	case *quicpool.StreamConn:
		return c.Stream
	case *npquic.StreamConn:
		return c.Stream
	case *vquic.StreamConn:
		return c.Stream
	case *rawConn:
		return c.Stream
	case *rawPending:
		return c.stream()
	}
	panic(fmt.Sprintf("unknown stream type %T", c))
}

// halfClose stops writing (sends FIN) and keeps reading. For NodePass and vistone that is what
// their StreamConn.Close does; quicpool's Close releases both directions, so its half-close is
// the stream's own Close.
func halfClose(c net.Conn) error {
	if p, ok := c.(*rawPending); ok {
		return p.halfClose()
	}
	return quicStream(c).Close()
}

// abort releases a stream in both directions, whatever state it is in: the error path.
func abort(c net.Conn) {
	if c == nil {
		return
	}
	if p, ok := c.(*rawPending); ok {
		p.abort()
		return
	}
	s := quicStream(c)
	s.CancelRead(1)
	s.CancelWrite(1)
}

// Pair is a started server pool and a client pool connected to it.
type Pair struct {
	Impl    Impl
	Shape   Shape
	Addr    string
	Server  Pool
	Client  Pool
	control []net.Conn // the control stream 00000000, both sides, held until Close
}

// startPair starts a server and a client of impl with the given shape on a fresh loopback port,
// takes the control stream on both sides (as NodePass's application does) and waits until both
// sides hold at least minCap idle streams, within wait.
func startPair(impl Impl, s Shape, wait time.Duration) (*Pair, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	return startPairOn(impl, s, wait, addr, addr)
}

// startPairOn is startPair with the server listening on listen and the client dialing dial (a
// relay in front of the server, or listen itself).
func startPairOn(impl Impl, s Shape, wait time.Duration, listen, dial string) (*Pair, error) {
	var err error
	p := &Pair{Impl: impl, Shape: s, Addr: listen}
	if p.Server, err = impl.NewServer(s, listen); err != nil {
		return nil, err
	}
	if p.Client, err = impl.NewClient(s, dial); err != nil {
		p.Server.Close()
		return nil, err
	}
	if rc, ok := p.Client.(*rawClient); ok && dial != listen {
		rc.alsoFor(listen) // the raw server finds its client by its own address
	}
	if err := p.takeControl(wait); err != nil {
		p.Close()
		return nil, err
	}
	if err := p.waitIdle(s.MinCap, wait); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// takeControl takes the control stream 00000000 by ID on both sides of a pooled
// implementation, so that no workload ever gets it from IncomingGet (NodePass's may hand it out
// there; quicpool's never does).
func (p *Pair) takeControl(wait time.Duration) error {
	if !p.Impl.Pooled {
		return nil
	}
	for _, side := range []Pool{p.Server, p.Client} {
		c, err := side.OutgoingGet(quicpool.ControlID, wait)
		if err != nil {
			return fmt.Errorf("control stream: %w", err)
		}
		p.control = append(p.control, c)
	}
	return nil
}

// waitIdle waits until both sides report at least n idle streams.
func (p *Pair) waitIdle(n int, wait time.Duration) error {
	if !p.Impl.Pooled {
		return nil
	}
	deadline := time.Now().Add(wait)
	for p.Server.Active() < n || p.Client.Active() < n {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not %d idle streams within %v (server %d, client %d)",
				p.Impl.Name, n, wait, p.Server.Active(), p.Client.Active())
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// Close closes both pools (the client first, as a tunnel client going away would), bounded: a
// peer library that hangs in Close is left behind rather than blocking the run.
func (p *Pair) Close() {
	for _, c := range p.control {
		abort(c)
	}
	boundedClose(p.Client)
	boundedClose(p.Server)
}

// boundedClose closes a pool, giving up after 10s.
func boundedClose(pool Pool) {
	if pool == nil {
		return
	}
	done := make(chan struct{})
	go func() { pool.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}

// errTimeout is what a bounded wait returns when it runs out.
var errTimeout = errors.New("timed out")

// withTimeout runs f and returns its error, or errTimeout if it takes longer than d (f keeps
// running in the background then).
func withTimeout(d time.Duration, f func() error) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return errTimeout
	}
}
