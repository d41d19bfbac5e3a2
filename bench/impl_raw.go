package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool"
)

// rawImpl is the floor a pool must beat: plain quic-go, one connection kept up by the client,
// and for every operation a fresh stream that the server opens on the client's connection
// (OpenStreamSync) and the client accepts (AcceptStream). No handshake, no ID on the wire,
// nothing kept ready: the leanest way to get a stream from the server to the client.
//
// To fit the pools' interface, the server's IncomingGet opens the stream and returns it with its
// QUIC stream ID as the ID; the client's OutgoingGet(id) returns at once a handle on the stream of
// that ID, which waits for the stream on first use (quic-go tells the client of a stream only
// when its first frame arrives, so the server must write first: the tunnel op does). The client's
// accept loop hands each stream it accepts to the handle that asked for its ID.
//
// Connection settings are the pools': keep-alive, idle timeout 3 x keep-alive, and the stream
// limit quicpool's server sets (max(2 x maxCap, 256)), here on the client, which accepts.
func rawImpl() Impl {
	return Impl{
		Name:      nameRaw,
		NewServer: func(s Shape, addr string) (Pool, error) { return newRawServer(s, addr, true) },
		NewClient: func(s Shape, addr string) (Pool, error) { return newRawClient(s, addr, true) },
	}
}

// rawClientOpensImpl is raw quic-go the other way round, with the pools' stream handshake: the
// client opens a fresh stream per operation, writes 0x00, and the server answers with a 4-byte
// ID. The server's IncomingGet asks the client of the same address to open a stream (by a
// function call in this process, where a real tunnel would send that request over its control
// channel), then hands out the stream the server accepted; the client's OutgoingGet(id) returns
// the stream once the client has read that ID. The workloads whose streams carry the client's
// data first (bulk, outage, crash, memory) use this variant: a server-opened stream stays unknown
// to the client until the server writes.
func rawClientOpensImpl() Impl {
	return Impl{
		Name:      nameRawClientOpens,
		NewServer: func(s Shape, addr string) (Pool, error) { return newRawServer(s, addr, false) },
		NewClient: func(s Shape, addr string) (Pool, error) { return newRawClient(s, addr, false) },
	}
}

// withRawClientOpens returns impls with raw quic-go's client-opens variant right after raw
// quic-go (the tunnel workload shows both).
func withRawClientOpens(impls []Impl) []Impl {
	var out []Impl
	for _, i := range impls {
		out = append(out, i)
		if i.Name == nameRaw {
			out = append(out, rawClientOpensImpl())
		}
	}
	return out
}

// rawClientOpens returns impls with raw quic-go replaced by its client-opens variant: for the
// workloads whose streams carry the client's data first.
func rawClientOpens(impls []Impl) []Impl {
	out := make([]Impl, len(impls))
	for n, i := range impls {
		if i.Name == nameRaw {
			i = rawClientOpensImpl()
		}
		out[n] = i
	}
	return out
}

// rawClients maps a server address to the raw client dialing it.
var rawClients sync.Map

// rawConn is a raw stream as a net.Conn. Close releases both directions.
type rawConn struct {
	*quic.Stream
	conn *quic.Conn
	id   string // the ID the server issued (server side)
}

func (c *rawConn) LocalAddr() net.Addr  { return c.conn.LocalAddr() }
func (c *rawConn) RemoteAddr() net.Addr { return c.conn.RemoteAddr() }
func (c *rawConn) Close() error {
	c.Stream.CancelRead(0)
	return c.Stream.Close()
}

func rawQUICConfig(s Shape) *quic.Config {
	return &quic.Config{
		KeepAlivePeriod:    s.KeepAlive,
		MaxIdleTimeout:     3 * s.KeepAlive,
		MaxIncomingStreams: int64(max(2*s.MaxCap, 2*quicpool.StreamsPerShard)),
	}
}

// rawServer accepts connections and streams and answers every stream's handshake at once. With
// serverOpens, its IncomingGet opens a fresh stream on the newest live connection instead.
type rawServer struct {
	addr        string
	serverOpens bool
	ln          *quic.Listener
	ctx         context.Context
	cancel      context.CancelFunc
	ready       chan *rawConn // handshaken streams, oldest first

	mu      sync.Mutex
	conns   []*quic.Conn
	arrived chan struct{} // closed when a connection arrives (then replaced)
}

func newRawServer(s Shape, addr string, serverOpens bool) (Pool, error) {
	tlsConf := serverTLS.Clone()
	tlsConf.NextProtos = []string{quicpool.ALPN}
	tlsConf.MinVersion = tls.VersionTLS13
	ln, err := quic.ListenAddr(addr, tlsConf, rawQUICConfig(s))
	if err != nil {
		return nil, err
	}
	srv := &rawServer{addr: addr, serverOpens: serverOpens, ln: ln, ready: make(chan *rawConn, 1<<14), arrived: make(chan struct{})}
	srv.ctx, srv.cancel = context.WithCancel(context.Background())
	go srv.accept()
	return srv, nil
}

func (srv *rawServer) accept() {
	for {
		conn, err := srv.ln.Accept(srv.ctx)
		if err != nil {
			return
		}
		srv.mu.Lock()
		srv.conns = append(srv.conns, conn)
		close(srv.arrived)
		srv.arrived = make(chan struct{})
		srv.mu.Unlock()
		go func() {
			for {
				s, err := conn.AcceptStream(srv.ctx)
				if err != nil {
					return
				}
				go srv.handshake(&rawConn{Stream: s, conn: conn})
			}
		}()
	}
}

// handshake reads the client's 0x00 and answers with a random 4-byte ID (never 00000000).
func (srv *rawServer) handshake(c *rawConn) {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [4]byte
	if _, err := io.ReadFull(c, b[:1]); err != nil || b[0] != 0 {
		abort(c)
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	for b == [4]byte{} {
		_, _ = rand.Read(b[:])
	}
	if _, err := c.Write(b[:]); err != nil {
		abort(c)
		return
	}
	c.id = hex.EncodeToString(b[:])
	select {
	case srv.ready <- c:
	default:
		abort(c)
	}
}

// IncomingGet opens a fresh stream on the client's connection (serverOpens), or has the client
// open a fresh stream and returns the oldest handshaken stream.
func (srv *rawServer) IncomingGet(timeout time.Duration) (string, net.Conn, error) {
	if srv.serverOpens {
		return srv.openStream(timeout)
	}
	if v, ok := rawClients.Load(srv.addr); ok {
		if err := v.(*rawClient).open(timeout); err != nil {
			return "", nil, err
		}
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case c := <-srv.ready:
		return c.id, c, nil
	case <-t.C:
		return "", nil, errTimeout
	case <-srv.ctx.Done():
		return "", nil, net.ErrClosed
	}
}

// openStream opens a fresh stream on the newest live connection (OpenStreamSync, which waits
// while the client's stream limit is reached), waiting up to timeout for a client to connect.
// The stream's ID is its QUIC stream ID. Nothing is written.
func (srv *rawServer) openStream(timeout time.Duration) (string, net.Conn, error) {
	ctx, cancel := context.WithTimeout(srv.ctx, timeout)
	defer cancel()
	for {
		conn, arrived := srv.liveConn()
		if conn == nil {
			select {
			case <-arrived:
				continue
			case <-ctx.Done():
				if srv.ctx.Err() != nil {
					return "", nil, net.ErrClosed
				}
				return "", nil, fmt.Errorf("raw IncomingGet: no client connection: %w", errTimeout)
			}
		}
		s, err := conn.OpenStreamSync(ctx)
		if err != nil {
			if conn.Context().Err() != nil && ctx.Err() == nil {
				continue // the connection died: open on the next one
			}
			return "", nil, err
		}
		id := strconv.FormatInt(int64(s.StreamID()), 10)
		return id, &rawConn{Stream: s, conn: conn, id: id}, nil
	}
}

// liveConn returns the newest live connection (forgetting dead ones), or nil and a channel closed
// when the next connection arrives.
func (srv *rawServer) liveConn() (*quic.Conn, <-chan struct{}) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for n := len(srv.conns) - 1; n >= 0; n-- {
		if c := srv.conns[n]; c.Context().Err() == nil {
			return c, nil
		}
		srv.conns = append(srv.conns[:n], srv.conns[n+1:]...)
	}
	return nil, srv.arrived
}

func (srv *rawServer) OutgoingGet(string, time.Duration) (net.Conn, error) {
	return nil, errors.New("raw quic-go: a server takes streams with IncomingGet only")
}

// Active is the number of handshaken streams not taken yet.
func (srv *rawServer) Active() int { return len(srv.ready) }

// Capacity is 0: nothing is kept ready.
func (srv *rawServer) Capacity() int { return 0 }

func (srv *rawServer) Close() {
	srv.cancel()
	srv.mu.Lock()
	conns := srv.conns
	srv.conns = nil
	srv.mu.Unlock()
	for _, c := range conns {
		_ = c.CloseWithError(0, "server closed")
	}
	_ = srv.ln.Close()
}

// rawClient dials the server on demand (again after the connection died, or after a stream open
// on it failed: a dead server or path) and opens a stream per request. With serverOpens, it
// keeps a connection up instead (redialing at once when it dies, each dial bounded by
// rawDialTimeout) and accepts the streams the server opens on it.
type rawClient struct {
	addr        string
	serverOpens bool
	alias       []string // other addresses it is filed under in rawClients (alsoFor)
	conf        *quic.Config
	tls         *tls.Config
	done        chan struct{} // closed by Close
	dial        sync.Mutex    // one dial at a time
	mu          sync.Mutex    // guards the fields below
	conn        *quic.Conn
	ids         map[string]*rawConn   // streams whose ID was read (server opens: that arrived), not taken yet
	wait        map[string]*rawWaiter // OutgoingGet callers (server opens: handles) waiting for an ID
	close       bool
}

// rawWaiter is an OutgoingGet waiting for the stream of an ID. The stream is sent on ch (buffered,
// under the client's lock); a stream for a waiter that gave up (dropped) is released instead.
type rawWaiter struct {
	ch      chan *rawConn
	dropped bool
}

// rawDialTimeout bounds each dial of a server-opens client's connection.
const rawDialTimeout = 500 * time.Millisecond

func newRawClient(s Shape, addr string, serverOpens bool) (Pool, error) {
	c := &rawClient{
		addr:        addr,
		serverOpens: serverOpens,
		conf:        rawQUICConfig(s),
		tls:         &tls.Config{InsecureSkipVerify: true, NextProtos: []string{quicpool.ALPN}, MinVersion: tls.VersionTLS13},
		done:        make(chan struct{}),
		ids:         map[string]*rawConn{},
		wait:        map[string]*rawWaiter{},
	}
	if serverOpens {
		go c.keep()
		return c, nil
	}
	c.conf.MaxIncomingStreams = -1
	rawClients.Store(addr, c)
	return c, nil
}

// keep keeps a connection up and accepts the streams the server opens on it, until Close.
func (c *rawClient) keep() {
	for {
		conn, err := c.connection(rawDialTimeout)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			select {
			case <-c.done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			continue
		}
		for {
			s, err := conn.AcceptStream(context.Background())
			if err != nil {
				break
			}
			c.deliver(&rawConn{Stream: s, conn: conn})
		}
		c.mu.Lock()
		if c.conn == conn {
			c.conn = nil
		}
		var stale []*rawConn
		for id, rc := range c.ids {
			if rc.conn == conn {
				stale = append(stale, rc)
				delete(c.ids, id)
			}
		}
		c.mu.Unlock()
		for _, rc := range stale {
			abort(rc)
		}
	}
}

// deliver hands a stream the server opened to the handle waiting for its ID, or keeps it for the
// OutgoingGet still to come.
func (c *rawClient) deliver(rc *rawConn) {
	rc.id = strconv.FormatInt(int64(rc.StreamID()), 10)
	c.mu.Lock()
	w, ok := c.wait[rc.id]
	switch {
	case !ok:
		c.ids[rc.id] = rc
	case w.dropped:
		delete(c.wait, rc.id)
	default:
		delete(c.wait, rc.id)
		w.ch <- rc
	}
	c.mu.Unlock()
	if ok && w.dropped {
		abort(rc)
	}
}

// connection returns the client's live connection, dialing a new one if there is none.
func (c *rawClient) connection(timeout time.Duration) (*quic.Conn, error) {
	c.dial.Lock()
	defer c.dial.Unlock()
	c.mu.Lock()
	conn, closed := c.conn, c.close
	c.mu.Unlock()
	if closed {
		return nil, net.ErrClosed
	}
	if conn != nil && conn.Context().Err() == nil {
		return conn, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := quic.DialAddr(ctx, c.addr, c.tls, c.conf)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.conn = conn
	c.mu.Unlock()
	return conn, nil
}

// alsoFor files the client under a server's listen address too, for a client that dials that
// server through a relay: the server's IncomingGet finds its client by its own address.
func (c *rawClient) alsoFor(serverAddr string) {
	c.mu.Lock()
	c.alias = append(c.alias, serverAddr)
	c.mu.Unlock()
	rawClients.Store(serverAddr, c)
}

// openStream opens a fresh stream, writes 0x00 and reads the 4-byte ID, within timeout. When the
// stream open or its handshake fails, the connection is closed, so that the next call dials
// again: a naive application's way to get over a server or path that died without telling.
func (c *rawClient) openStream(timeout time.Duration) (*rawConn, string, error) {
	deadline := time.Now().Add(timeout)
	conn, err := c.connection(timeout)
	if err != nil {
		return nil, "", err
	}
	fail := func(err error) (*rawConn, string, error) {
		c.mu.Lock()
		if c.conn == conn {
			c.conn = nil
		}
		c.mu.Unlock()
		_ = conn.CloseWithError(0, "stream open failed")
		return nil, "", err
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	s, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return fail(err)
	}
	rc := &rawConn{Stream: s, conn: conn}
	_ = s.SetDeadline(deadline)
	var b [4]byte
	if _, err := s.Write([]byte{0}); err != nil {
		abort(rc)
		return fail(err)
	}
	if _, err := io.ReadFull(s, b[:]); err != nil {
		abort(rc)
		return fail(err)
	}
	_ = s.SetDeadline(time.Time{})
	return rc, hex.EncodeToString(b[:]), nil
}

// open opens a fresh stream and makes it available to OutgoingGet under its ID.
func (c *rawClient) open(timeout time.Duration) error {
	rc, id, err := c.openStream(timeout)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if w, ok := c.wait[id]; ok {
		delete(c.wait, id)
		w.ch <- rc
	} else {
		c.ids[id] = rc
	}
	c.mu.Unlock()
	return nil
}

// Prefill opens n streams (32 at a time) and keeps them: the memory workload's idle streams.
func (c *rawClient) Prefill(n int) error {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	for range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := c.open(10 * time.Second); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// IncomingGet on a raw client opens a fresh stream and returns it with its ID: the crash
// workload's op, whose server takes every stream it accepts.
func (c *rawClient) IncomingGet(timeout time.Duration) (string, net.Conn, error) {
	rc, id, err := c.openStream(timeout)
	if err != nil {
		return "", nil, err
	}
	return id, rc, nil
}

// OutgoingGet returns the stream with the given ID once the client has read that ID. With
// serverOpens, it returns at once: the stream if it has arrived, else a handle that waits for it
// on first use, at most timeout from now unless a deadline is set (rawPending).
func (c *rawClient) OutgoingGet(id string, timeout time.Duration) (net.Conn, error) {
	c.mu.Lock()
	if rc, ok := c.ids[id]; ok {
		delete(c.ids, id)
		c.mu.Unlock()
		return rc, nil
	}
	w := &rawWaiter{ch: make(chan *rawConn, 1)}
	c.wait[id] = w
	c.mu.Unlock()
	if c.serverOpens {
		return &rawPending{c: c, id: id, w: w, until: time.Now().Add(timeout), ready: make(chan struct{})}, nil
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case rc := <-w.ch:
		return rc, nil
	case <-t.C:
	}
	if rc := c.giveUp(id, w, false); rc != nil { // arrived as we gave up
		return rc, nil
	}
	return nil, fmt.Errorf("raw OutgoingGet(%s): %w", id, errTimeout)
}

// giveUp withdraws a waiter. It returns the stream if it was delivered meanwhile; a stream that
// arrives later is kept for another OutgoingGet, or with drop released.
func (c *rawClient) giveUp(id string, w *rawWaiter, drop bool) *rawConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wait[id] == w {
		if drop {
			w.dropped = true
		} else {
			delete(c.wait, id)
		}
		return nil
	}
	select {
	case rc := <-w.ch:
		return rc
	default:
		return nil
	}
}

// Active is the number of streams whose ID was read and that were not taken yet.
func (c *rawClient) Active() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ids)
}

// Capacity is 0: nothing is kept ready.
func (c *rawClient) Capacity() int { return 0 }

func (c *rawClient) Close() {
	c.mu.Lock()
	conn := c.conn
	if !c.close {
		close(c.done)
	}
	c.close = true
	addrs := append([]string{c.addr}, c.alias...)
	c.mu.Unlock()
	for _, a := range addrs {
		rawClients.CompareAndDelete(a, c)
	}
	if conn != nil {
		_ = conn.CloseWithError(0, "client closed")
	}
}

// rawPending is a server-opens client's handle on the stream of an ID that has not arrived yet:
// the first Read, Write or half-close waits for it, until the read or write deadline if one is
// set, else until OutgoingGet's timeout. If it never arrives, the handle fails with a timeout and
// the stream, should it arrive later, is released.
type rawPending struct {
	c     *rawClient
	id    string
	w     *rawWaiter
	until time.Time     // OutgoingGet's bound on the wait
	ready chan struct{} // closed once rc or err is set

	mu     sync.Mutex
	rc     *rawConn
	err    error
	rd, wd time.Time
}

// resolve returns the stream, waiting for it if it has not arrived (bounded by the write
// deadline for a write, the read deadline for a read).
func (p *rawPending) resolve(write bool) (*rawConn, error) {
	p.mu.Lock()
	if p.rc != nil || p.err != nil {
		defer p.mu.Unlock()
		return p.rc, p.err
	}
	bound := p.until
	if d := p.rd; !write && !d.IsZero() {
		bound = d
	} else if d := p.wd; write && !d.IsZero() {
		bound = d
	}
	p.mu.Unlock()
	t := time.NewTimer(time.Until(bound))
	defer t.Stop()
	select {
	case rc := <-p.w.ch:
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.err != nil { // failed meanwhile
			abort(rc)
			return nil, p.err
		}
		p.rc = rc
		_ = rc.SetReadDeadline(p.rd)
		_ = rc.SetWriteDeadline(p.wd)
		close(p.ready)
		return rc, nil
	case <-p.ready:
	case <-t.C:
		p.fail(fmt.Errorf("raw OutgoingGet(%s): the stream did not arrive: %w", p.id, os.ErrDeadlineExceeded))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rc, p.err
}

// fail ends the wait with err, unless the stream is already there; a stream delivered as it gave
// up is released, and one that arrives later too.
func (p *rawPending) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rc != nil || p.err != nil {
		return
	}
	if rc := p.c.giveUp(p.id, p.w, true); rc != nil {
		abort(rc)
	}
	p.err = err
	close(p.ready)
}

func (p *rawPending) Read(b []byte) (int, error) {
	rc, err := p.resolve(false)
	if err != nil {
		return 0, err
	}
	return rc.Read(b)
}

func (p *rawPending) Write(b []byte) (int, error) {
	rc, err := p.resolve(true)
	if err != nil {
		return 0, err
	}
	return rc.Write(b)
}

// halfClose sends FIN once the stream is there.
func (p *rawPending) halfClose() error {
	rc, err := p.resolve(true)
	if err != nil {
		return err
	}
	return rc.Stream.Close()
}

// abort releases the stream in both directions, or gives up waiting for it.
func (p *rawPending) abort() {
	p.fail(net.ErrClosed)
	p.mu.Lock()
	rc := p.rc
	p.mu.Unlock()
	if rc != nil {
		abort(rc)
	}
}

// stream is the QUIC stream, waited for; nil if it never arrived.
func (p *rawPending) stream() *quic.Stream {
	if rc, _ := p.resolve(true); rc != nil {
		return rc.Stream
	}
	return nil
}

func (p *rawPending) Close() error {
	p.mu.Lock()
	rc := p.rc
	p.mu.Unlock()
	if rc == nil {
		p.abort()
		return nil
	}
	return rc.Close()
}

func (p *rawPending) LocalAddr() net.Addr {
	if rc := p.resolved(); rc != nil {
		return rc.LocalAddr()
	}
	return &net.UDPAddr{}
}

func (p *rawPending) RemoteAddr() net.Addr {
	if rc := p.resolved(); rc != nil {
		return rc.RemoteAddr()
	}
	return &net.UDPAddr{}
}

func (p *rawPending) resolved() *rawConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rc
}

func (p *rawPending) SetDeadline(t time.Time) error {
	_ = p.SetReadDeadline(t)
	return p.SetWriteDeadline(t)
}

func (p *rawPending) SetReadDeadline(t time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rd = t
	if p.rc != nil {
		return p.rc.SetReadDeadline(t)
	}
	return nil
}

func (p *rawPending) SetWriteDeadline(t time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.wd = t
	if p.rc != nil {
		return p.rc.SetWriteDeadline(t)
	}
	return nil
}

// packetsSent is the QUIC packets the server has sent on its connections.
func (srv *rawServer) packetsSent() uint64 {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	var n uint64
	for _, c := range srv.conns {
		n += c.ConnectionStats().PacketsSent
	}
	return n
}

// packetsSent is the QUIC packets the client has sent on its connection.
func (c *rawClient) packetsSent() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return 0
	}
	return c.conn.ConnectionStats().PacketsSent
}
