package quicpool_test

import (
	"io"
	"testing"
	"time"

	"github.com/quicpool/quicpool"
)

// BenchmarkTunnel is the tunnel round trip of the side-by-side benchmark: server IncomingGet,
// client OutgoingGet(id), 1 KiB each way, both close. Run with -cpu and -benchtime to vary;
// b.SetParallelism(8) on 2 cores gives 16 workers.
func BenchmarkTunnel(b *testing.B) {
	server := startServer(b, 64)
	client := startClient(b, 32, 64, server.Addr())
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, len(kib))
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
			go func() { sc.Write(kib) }()
			if _, err := io.ReadFull(cc, buf); err != nil {
				b.Error(err)
				return
			}
			go func() { cc.Write(kib) }()
			if _, err := io.ReadFull(sc, buf); err != nil {
				b.Error(err)
				return
			}
			sc.Close()
			cc.Close()
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkTakeReady measures handing out a stream that is already idle: the message round trip
// through the coordinator and the shard, without I/O.
func BenchmarkTakeReady(b *testing.B) {
	server := startServer(b, 128)
	startClient(b, 128, 128, server.Addr())
	b.ReportAllocs()
	for b.Loop() {
		_, c, err := server.IncomingGet(5 * time.Second)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		c.Close()
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
