package quicpool_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// relay is a UDP relay between clients and one target, standing for the path between a client
// pool and a server pool. Like a NAT, it gives every client address its own upstream socket (a
// mapping), so the target sees one source address per client. Tests can drop every datagram
// (Blackhole) or those of the clients it has seen so far (BlackholeSeen), delay them (Delay), and
// move every mapping to a new source port (Rebind).
type relay struct {
	ln     *net.UDPConn // the socket clients dial
	target *net.UDPAddr

	mu        sync.Mutex
	mappings  map[string]*net.UDPConn // upstream socket by client address
	blackhole bool
	holed     map[string]bool // client addresses whose datagrams are dropped, both ways
	holedDown map[string]bool // client addresses whose datagrams toward them are dropped
	delay     time.Duration
	from      net.IP // the address upstream sockets bind to (127.0.0.1 until RebindFrom)
	closed    bool

	queues             [2]chan relayPacket // delayed datagrams: toward the target, toward clients
	forwarded, dropped atomic.Uint64
	retries            atomic.Uint64 // QUIC Retry packets from the target
	done               chan struct{}
	wg                 sync.WaitGroup
}

// relayPacket is a delayed datagram and where it goes.
type relayPacket struct {
	due  time.Time
	conn *net.UDPConn
	to   *net.UDPAddr
	data []byte
}

// newRelay starts a relay on a fresh loopback port in front of target; the test's cleanup closes it.
func newRelay(t *testing.T, target string) *relay {
	t.Helper()
	to, err := net.ResolveUDPAddr("udp", target)
	require.NoError(t, err)
	ln, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	r := &relay{ln: ln, target: to, mappings: map[string]*net.UDPConn{}, done: make(chan struct{})}
	r.wg.Add(3)
	go r.fromClients()
	for i := range r.queues {
		r.queues[i] = make(chan relayPacket, 1024)
		go r.deliver(r.queues[i])
	}
	t.Cleanup(r.Close)
	return r
}

// Addr is the address clients dial.
func (r *relay) Addr() string { return r.ln.LocalAddr().String() }

// Blackhole drops every datagram, both ways, while on.
func (r *relay) Blackhole(on bool) { r.mu.Lock(); r.blackhole = on; r.mu.Unlock() }

// BlackholeSeen drops, while on, every datagram of the clients the relay has seen so far, both
// ways: their connections go silent, while a client's new connection (a new source port) gets
// through.
func (r *relay) BlackholeSeen(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.holed = r.seen(on)
}

// BlackholeSeenToClients is BlackholeSeen for the datagrams toward the clients only: their
// connections go silent for them, while the target still hears them.
func (r *relay) BlackholeSeenToClients(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.holedDown = r.seen(on)
}

// seen maps every client address the relay has seen so far to on. Called with mu held.
func (r *relay) seen(on bool) map[string]bool {
	m := make(map[string]bool, len(r.mappings))
	for client := range r.mappings {
		m[client] = on
	}
	return m
}

// Delay adds d to the way of every datagram, both ways (0: none).
func (r *relay) Delay(d time.Duration) { r.mu.Lock(); r.delay = d; r.mu.Unlock() }

// Stats counts the datagrams forwarded and dropped so far.
func (r *relay) Stats() (forwarded, dropped uint64) { return r.forwarded.Load(), r.dropped.Load() }

// Rebind closes every upstream socket: the next datagram of each client opens a new one, so the
// target sees the client come from a new port, as after a NAT rebinding.
func (r *relay) Rebind() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for client, up := range r.mappings {
		_ = up.Close()
		delete(r.mappings, client)
	}
}

// RebindFrom is Rebind with the new upstream sockets on ip: the target sees the client's
// connection move to another address, as after a migration or a NAT that changed its address.
func (r *relay) RebindFrom(ip net.IP) {
	r.mu.Lock()
	r.from = ip
	r.mu.Unlock()
	r.Rebind()
}

// Close closes every socket and returns once every goroutine of the relay has ended. Safe to
// call more than once.
func (r *relay) Close() {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.done)
		_ = r.ln.Close()
		for _, up := range r.mappings {
			_ = up.Close()
		}
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// upstream returns the client's upstream socket, opening it (and its reader) if there is none;
// nil once the relay is closed.
func (r *relay) upstream(client *net.UDPAddr) *net.UDPConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	if up := r.mappings[client.String()]; up != nil || r.closed {
		return up
	}
	from := r.from
	if from == nil {
		from = net.IPv4(127, 0, 0, 1)
	}
	up, err := net.ListenUDP("udp", &net.UDPAddr{IP: from})
	if err != nil {
		return nil
	}
	r.mappings[client.String()] = up
	r.wg.Add(1) // under mu with closed false: Close has not started waiting
	go r.fromTarget(up, client)
	return up
}

// fromClients forwards datagrams from clients to the target through their mappings.
func (r *relay) fromClients() {
	defer r.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, client, err := r.ln.ReadFromUDP(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		if up := r.upstream(client); up != nil {
			r.send(0, up, r.target, client, buf[:n])
		}
	}
}

// fromTarget forwards datagrams arriving on one upstream socket back to its client, until Rebind
// or Close closes the socket.
func (r *relay) fromTarget(up *net.UDPConn, client *net.UDPAddr) {
	defer r.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, _, err := up.ReadFromUDP(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err == nil {
			if n > 0 && buf[0]&0x80 != 0 && buf[0]&0x30 == 0x30 { // QUIC v1 long header, type Retry
				r.retries.Add(1)
			}
			r.send(1, r.ln, client, client, buf[:n])
		}
	}
}

// send drops, writes or queues one datagram of client's according to the current settings; dir
// picks the queue (0: toward the target, 1: toward the client).
func (r *relay) send(dir int, conn *net.UDPConn, to, client *net.UDPAddr, data []byte) {
	r.mu.Lock()
	hole := r.blackhole || r.holed[client.String()] || dir == 1 && r.holedDown[client.String()]
	delay := r.delay
	r.mu.Unlock()
	switch {
	case hole:
		r.dropped.Add(1)
	case delay == 0:
		r.write(conn, to, data)
	default:
		select {
		case r.queues[dir] <- relayPacket{time.Now().Add(delay), conn, to, bytes.Clone(data)}:
		default: // the queue is full: the path loses the datagram
			r.dropped.Add(1)
		}
	}
}

// deliver writes the datagrams of one queue in order, each once it is due.
func (r *relay) deliver(queue <-chan relayPacket) {
	defer r.wg.Done()
	for {
		select {
		case <-r.done:
			return
		case p := <-queue:
			wait := time.NewTimer(time.Until(p.due))
			select {
			case <-r.done:
				wait.Stop()
				return
			case <-wait.C:
			}
			r.write(p.conn, p.to, p.data)
		}
	}
}

// write sends one datagram, counting it forwarded or (if the socket is gone) dropped.
func (r *relay) write(conn *net.UDPConn, to *net.UDPAddr, data []byte) {
	if _, err := conn.WriteToUDP(data, to); err != nil {
		r.dropped.Add(1)
		return
	}
	r.forwarded.Add(1)
}

// The relay on its own, with plain UDP sockets on both sides: it keeps one mapping per client,
// delays, blackholes and rebinds, and Close leaves no goroutine behind.
func TestRelayDatagrams(t *testing.T) {
	baseline := runtime.NumGoroutine()
	listen := func() *net.UDPConn {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	// recv reads one datagram within d, or returns a nil sender.
	recv := func(c *net.UDPConn, d time.Duration) (string, *net.UDPAddr) {
		buf := make([]byte, 64<<10)
		require.NoError(t, c.SetReadDeadline(time.Now().Add(d)))
		n, from, err := c.ReadFromUDP(buf)
		if err != nil {
			return "", nil
		}
		return string(buf[:n]), from
	}
	target, a, b := listen(), listen(), listen()
	r := newRelay(t, target.LocalAddr().String())
	to, err := net.ResolveUDPAddr("udp", r.Addr())
	require.NoError(t, err)

	// echo sends msg from client through the relay and back, returning the source the target saw.
	echo := func(client *net.UDPConn, msg string) *net.UDPAddr {
		_, err := client.WriteToUDP([]byte(msg), to)
		require.NoError(t, err)
		got, from := recv(target, 5*time.Second)
		require.Equal(t, msg, got)
		_, err = target.WriteToUDP([]byte("re:"+msg), from)
		require.NoError(t, err)
		got, back := recv(client, 5*time.Second)
		require.Equal(t, "re:"+msg, got)
		require.Equal(t, to.String(), back.String(), "replies come from the relay")
		return from
	}
	fromA, fromB := echo(a, "a"), echo(b, "b")
	require.NotEqual(t, fromA.String(), fromB.String(), "one mapping per client")
	require.Equal(t, fromA.String(), echo(a, "a again").String(), "a mapping is kept")

	r.Delay(150 * time.Millisecond)
	start := time.Now()
	echo(a, "slow")
	require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond, "delayed both ways")
	r.Delay(0)

	r.Blackhole(true)
	_, err = a.WriteToUDP([]byte("lost"), to)
	require.NoError(t, err)
	got, _ := recv(target, 200*time.Millisecond)
	require.Empty(t, got, "nothing crosses a blackhole")
	r.Blackhole(false)

	r.Rebind()
	require.NotEqual(t, fromA.String(), echo(a, "rebound").String(), "a new source port after Rebind")
	// The counters follow the writes, which may return after the echo arrived.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		forwarded, dropped := r.Stats()
		assert.Equal(c, uint64(10), forwarded, "5 echoes, 2 datagrams each")
		assert.Equal(c, uint64(1), dropped, "the blackholed datagram")
	}, 5*time.Second, time.Millisecond)

	r.Close()
	for _, c := range []*net.UDPConn{target, a, b} {
		require.NoError(t, c.Close())
	}
	settleGoroutines(t, baseline)
}

// Pools through the relay: a tunnel works, a blackhole stops the data (and the relay counts what
// it drops), the data flows again once the blackhole ends, and the connection survives a NAT
// rebinding by migrating to the new source port.
func TestRelayForwardsBlackholesAndRebinds(t *testing.T) {
	server := startServer(t, 8)
	r := newRelay(t, server.Addr())
	client := startClient(t, 4, 8, r.Addr())
	payload := []byte("through the relay")

	sc, cc := tunnel(t, server, client, payload)
	require.NoError(t, sc.Close())
	require.NoError(t, cc.Close())

	// pair takes a stream on both sides, every read and write bounded by 10s.
	pair := func() (sc, cc net.Conn) {
		id, sc, err := server.IncomingGet(5 * time.Second)
		require.NoError(t, err)
		cc, err = client.OutgoingGet(id, 5*time.Second)
		require.NoError(t, err)
		t.Cleanup(func() { _ = sc.Close(); _ = cc.Close() })
		for _, c := range []net.Conn{sc, cc} {
			require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
		}
		return sc, cc
	}

	sc, cc = pair()
	r.Blackhole(true)
	_, before := r.Stats()
	_, err := cc.Write(payload) // buffered by quic-go: the write returns, the data is lost on the way
	require.NoError(t, err)
	require.NoError(t, sc.SetReadDeadline(time.Now().Add(300*time.Millisecond)))
	_, err = io.ReadFull(sc, make([]byte, len(payload)))
	var ne net.Error
	require.ErrorAs(t, err, &ne, "nothing crosses the blackhole")
	require.True(t, ne.Timeout())
	bound := time.NewTimer(5 * time.Second)
	defer bound.Stop()
	for _, dropped := r.Stats(); dropped <= before; _, dropped = r.Stats() {
		select {
		case <-bound.C:
			t.Fatal("the relay dropped nothing while blackholed")
		case <-time.After(5 * time.Millisecond):
		}
	}

	// quic-go retransmits what the blackhole swallowed; the stream is whole.
	r.Blackhole(false)
	require.NoError(t, sc.SetReadDeadline(time.Now().Add(10*time.Second)))
	got := make([]byte, len(payload))
	_, err = io.ReadFull(sc, got)
	require.NoError(t, err)
	require.Equal(t, payload, got)
	roundTrip(t, sc, cc, payload)

	// After a rebinding the server sees the client from a new port and moves the connection there.
	old := sc.RemoteAddr().String()
	r.Rebind()
	roundTrip(t, sc, cc, payload)
	sc2, cc2 := pair()
	roundTrip(t, sc2, cc2, payload)
	bound.Reset(10 * time.Second)
	for sc.RemoteAddr().String() == old {
		select {
		case <-bound.C:
			t.Fatalf("the server still sends to %s after the rebinding", old)
		case <-time.After(5 * time.Millisecond):
		}
	}
	forwarded, dropped := r.Stats()
	t.Logf("relay: %d datagrams forwarded, %d dropped", forwarded, dropped)
}
