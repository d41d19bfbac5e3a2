package quicpool_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool"
)

// BenchmarkTunnel is the tunnel round trip of the side-by-side benchmark on a 32/64 pair: server
// IncomingGet, client OutgoingGet(id), 1 KiB each way, each side half-closes and reads the peer
// to EOF, then both close. Run with -cpu and -benchtime to vary; b.SetParallelism(8) on 2 cores
// gives 16 workers.
func BenchmarkTunnel(b *testing.B) { benchmarkTunnel(b, 32, 64) }

// BenchmarkTunnelEightConnections is BenchmarkTunnel on a 64/1024 pair: eight connections, over
// which the client's refill and the server's hand-outs spread the streams.
func BenchmarkTunnelEightConnections(b *testing.B) { benchmarkTunnel(b, 64, 1024) }

func benchmarkTunnel(b *testing.B, minCap, maxCap int) {
	server := startServer(b, maxCap)
	client := startClient(b, minCap, maxCap, server.Addr())
	b.SetParallelism(8)
	b.ReportAllocs()
	created := goroutinesCreated()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id, sc, err := server.IncomingGet(5 * time.Second)
			if err != nil {
				b.Error(err)
				return
			}
			cc, err := client.OutgoingGet(id, 5*time.Second)
			if err != nil {
				b.Error(err)
				return
			}
			if err := tunnelExchange(sc, cc); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	b.ReportMetric(float64(goroutinesCreated()-created)/float64(b.N), "goroutines/op")
}

// goroutinesCreated is the number of goroutines this process has started.
func goroutinesCreated() uint64 {
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// tunnelExchange moves 1 KiB each way over a taken pair as a tunnel does (write, half-close, read the
// peer to EOF) and closes both.
func tunnelExchange(sc, cc net.Conn) error {
	defer sc.Close()
	defer cc.Close()
	for _, c := range []net.Conn{sc, cc} {
		if _, err := c.Write(kib); err != nil {
			return err
		}
		if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
			return err
		}
	}
	for _, c := range []net.Conn{cc, sc} {
		got, err := io.Copy(io.Discard, c)
		if err != nil {
			return err
		}
		if got != int64(len(kib)) {
			return fmt.Errorf("read %d bytes, want %d", got, len(kib))
		}
	}
	return nil
}

// BenchmarkTakeReady measures handing out a stream that is already idle: IncomingGet on a full
// server pool, the message round trip through the coordinator, without I/O. Untimed, the client
// takes the same stream, both close it, and both pools refill to capacity before the next take
// (a server closing streams the client never took would look like a server flushing its pool).
func BenchmarkTakeReady(b *testing.B) {
	const capacity = 128
	server := startServer(b, capacity)
	client := startClient(b, capacity, capacity, server.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		if err := server.WaitReady(ctx, capacity); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		id, sc, err := server.IncomingGet(5 * time.Second)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cc, err := client.OutgoingGet(id, 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		sc.Close()
		cc.Close()
		b.StartTimer()
	}
}

// BenchmarkState measures one accessor call (a message round trip to the coordinator).
func BenchmarkState(b *testing.B) {
	server := startServer(b, 1)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			server.Active()
		}
	})
}

var _ = quicpool.ControlID

// BenchmarkWakeWaiter measures waking a caller blocked in OutgoingGet(id) for an ID that arrives
// after the call. A plain quic-go server stands in for the server pool: it holds each stream the
// client pool opens, and once the caller is waiting (Stats().Waiters == 1) the benchmark writes
// the ID on one of them. The timed part runs from that write until OutgoingGet returns: one
// loopback QUIC hop, the client shard reading the ID, the coordinator, and the waiter waking up
// (NodePass polls every 50ms here).
func BenchmarkWakeWaiter(b *testing.B) {
	addr, pending := holdingServer(b)
	client := quicpool.NewClientPool(4, 4, 100*time.Millisecond, time.Second, 10*time.Second,
		"1", "localhost", quicpool.StaticAddr(addr))
	go client.ClientManager()
	b.Cleanup(client.Close)
	type got struct {
		conn net.Conn
		err  error
	}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		var st *quic.Stream
		select {
		case st = <-pending:
		case <-time.After(10 * time.Second):
			b.Fatal("the client opened no stream")
		}
		var raw [4]byte
		for raw == [4]byte{} || hex.EncodeToString(raw[:]) == quicpool.ControlID {
			_, _ = rand.Read(raw[:])
		}
		res := make(chan got, 1)
		go func() {
			c, err := client.OutgoingGet(hex.EncodeToString(raw[:]), 10*time.Second)
			res <- got{c, err}
		}()
		for client.Stats().Waiters == 0 {
			time.Sleep(20 * time.Microsecond)
		}
		b.StartTimer()
		if _, err := st.Write(raw[:]); err != nil {
			b.Fatal(err)
		}
		r := <-res
		b.StopTimer()
		if r.err != nil {
			b.Fatal(r.err)
		}
		r.conn.Close()
		st.CancelRead(0)
		st.Close()
		b.StartTimer()
	}
}

// holdingServer is a plain quic-go server speaking ALPN np-quic that reads each new stream's
// 0x00 and then holds the stream, unanswered, on the returned channel (a benchmark or a test
// answers it).
func holdingServer(tb testing.TB) (string, <-chan *quic.Stream) {
	tlsConf := selfSigned(tb)
	tlsConf.NextProtos = []string{quicpool.ALPN}
	ln, err := quic.ListenAddr("127.0.0.1:0", tlsConf, &quic.Config{MaxIdleTimeout: 30 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(func() { cancel(); ln.Close() })
	pending := make(chan *quic.Stream, 64)
	go func() {
		for {
			conn, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			go func() {
				defer conn.CloseWithError(0, "")
				for {
					st, err := conn.AcceptStream(ctx)
					if err != nil {
						return
					}
					go func() {
						var first [1]byte
						if _, err := io.ReadFull(st, first[:]); err != nil || first[0] != 0 {
							st.CancelRead(1)
							st.CancelWrite(1)
							return
						}
						pending <- st
					}()
				}
			}()
		}
	}()
	return ln.Addr().String(), pending
}

// BenchmarkRefillCycle measures one refill cycle: from full pools, take a stream pair (server
// IncomingGet, client OutgoingGet of its ID), close it, and wait (WaitReady) until both pools are
// back at capacity. The replacement is opened at once, not at a refill tick, so an op is a take,
// a stream open with its 0x00/ID exchange over loopback, and the actors' bookkeeping.
func BenchmarkRefillCycle(b *testing.B) {
	const capacity = 8
	server := startServer(b, 2*capacity)
	client := startClient(b, capacity, capacity, server.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := server.WaitReady(ctx, capacity); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		id, sc, err := server.IncomingGet(5 * time.Second)
		if err != nil {
			b.Fatal(err)
		}
		cc, err := client.OutgoingGet(id, 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		sc.Close()
		cc.Close()
		if err := client.WaitReady(ctx, capacity); err != nil {
			b.Fatal(err)
		}
		if err := server.WaitReady(ctx, capacity); err != nil {
			b.Fatal(err)
		}
	}
}
