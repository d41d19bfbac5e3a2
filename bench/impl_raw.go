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
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool"
)

// rawImpl is the floor a pool must beat on latency: plain quic-go, one connection, a fresh
// stream opened per operation with the pools' handshake (the client writes 0x00, the server
// answers with a 4-byte ID). Nothing is kept ready.
//
// To fit the pools' interface, the server's IncomingGet asks the client of the same address to
// open a stream (in one process the client stands in for the application's control channel),
// then hands out the stream the server accepted; the client's OutgoingGet(id) returns the stream
// once the client has read that ID. Connection settings are the pools': keep-alive, idle timeout
// 3 x keep-alive, and the stream limit quicpool's server sets (max(2 x maxCap, 256)).
func rawImpl() Impl {
	return Impl{
		Name:      nameRaw,
		NewServer: newRawServer,
		NewClient: newRawClient,
	}
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

// rawServer accepts connections and streams and answers every stream's handshake at once.
type rawServer struct {
	addr   string
	ln     *quic.Listener
	ctx    context.Context
	cancel context.CancelFunc
	ready  chan *rawConn // handshaken streams, oldest first

	mu    sync.Mutex
	conns []*quic.Conn
}

func newRawServer(s Shape, addr string) (Pool, error) {
	tlsConf := serverTLS.Clone()
	tlsConf.NextProtos = []string{quicpool.ALPN}
	tlsConf.MinVersion = tls.VersionTLS13
	ln, err := quic.ListenAddr(addr, tlsConf, rawQUICConfig(s))
	if err != nil {
		return nil, err
	}
	srv := &rawServer{addr: addr, ln: ln, ready: make(chan *rawConn, 1<<14)}
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

// IncomingGet has the client open a fresh stream, then returns the oldest handshaken stream.
func (srv *rawServer) IncomingGet(timeout time.Duration) (string, net.Conn, error) {
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
// on it failed: a dead server or path) and opens a stream per request.
type rawClient struct {
	addr  string
	alias []string // other addresses it is filed under in rawClients (alsoFor)
	conf  *quic.Config
	tls   *tls.Config
	dial  sync.Mutex // one dial at a time
	mu    sync.Mutex // guards the fields below
	conn  *quic.Conn
	ids   map[string]*rawConn      // streams whose ID was read, not taken yet
	wait  map[string]chan *rawConn // OutgoingGet callers waiting for an ID
	close bool
}

func newRawClient(s Shape, addr string) (Pool, error) {
	c := &rawClient{
		addr: addr,
		conf: rawQUICConfig(s),
		tls:  &tls.Config{InsecureSkipVerify: true, NextProtos: []string{quicpool.ALPN}, MinVersion: tls.VersionTLS13},
		ids:  map[string]*rawConn{},
		wait: map[string]chan *rawConn{},
	}
	c.conf.MaxIncomingStreams = -1
	rawClients.Store(addr, c)
	return c, nil
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
		w <- rc
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

// OutgoingGet returns the stream with the given ID once the client has read that ID.
func (c *rawClient) OutgoingGet(id string, timeout time.Duration) (net.Conn, error) {
	c.mu.Lock()
	if rc, ok := c.ids[id]; ok {
		delete(c.ids, id)
		c.mu.Unlock()
		return rc, nil
	}
	w := make(chan *rawConn, 1)
	c.wait[id] = w
	c.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case rc := <-w:
		return rc, nil
	case <-t.C:
	}
	c.mu.Lock()
	delete(c.wait, id)
	c.mu.Unlock()
	select {
	case rc := <-w: // arrived as we gave up
		return rc, nil
	default:
		return nil, fmt.Errorf("raw OutgoingGet(%s): %w", id, errTimeout)
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
