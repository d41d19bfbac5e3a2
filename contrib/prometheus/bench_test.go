package quicpoolprom

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/quicpool/quicpool"
)

var (
	overheadRounds = flag.Int("overhead.rounds", 20, "BenchmarkScrapeOverhead: rounds, each running both variants")
	overheadRound  = flag.Duration("overhead.round", time.Second, "BenchmarkScrapeOverhead: how long each variant runs in a round")
	overheadWarmUp = flag.Duration("overhead.warmup", 2*time.Second, "BenchmarkScrapeOverhead: the warm-up, with the scraper")
	overheadEvery  = flag.Duration("overhead.every", 100*time.Millisecond, "BenchmarkScrapeOverhead: the scrape interval")
	overheadScrape = flag.String("overhead.scrape", "http", "BenchmarkScrapeOverhead: how to scrape: "+
		"http (GET /metrics with gzip, as Prometheus does), identity (GET /metrics uncompressed), gather (the registry's Gather, no HTTP)")
)

// BenchmarkScrapeOverhead measures what a Prometheus scraper costs the pools' hot path. It runs
// the root package's BenchmarkTunnel workload (server IncomingGet, client OutgoingGet(id), 1 KiB
// each way, both close; 8 workers per CPU) on one server pool and one client pool, in rounds of
// two variants on the same pools: without a collector, and with a registry holding
// NewCollector(server, client) served by promhttp on a loopback listener and scraped every
// 100ms by a goroutine of the same process. After a warm-up, each round runs both variants for 1s,
// in alternating order (ABBA: the first of a round is the second of the next).
//
// It reports the median ops/s of each variant and, as ratio, the median of the rounds' ratios
// with/without: the workload's throughput shifts for seconds at a time whatever the scraper does,
// and a round's two variants, a second apart, see the same shift. The benchmark runs once,
// whatever b.N, for about 2 x rounds x round + warm-up (42s by default):
//
//	go -C contrib/prometheus test -run '^$' -bench ScrapeOverhead -benchtime 1x -v
//
// -args -overhead.rounds N, -overhead.round D, -overhead.every D and -overhead.scrape
// http|identity|gather change the rounds, their length, the scrape interval and the scrape.
func BenchmarkScrapeOverhead(b *testing.B) {
	server := startServer(b, 64)
	client := startClient(b, 32, 64, server.Addr())

	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(server, client))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	url := "http://" + ln.Addr().String() + "/metrics"
	var scrape func() error
	switch *overheadScrape {
	case "http", "identity":
		// The transport asks for gzip and reads it transparently, unless compression is disabled.
		hc := &http.Client{Timeout: 5 * time.Second,
			Transport: &http.Transport{DisableCompression: *overheadScrape == "identity"}}
		b.Cleanup(hc.CloseIdleConnections)
		scrape = func() error { return get(hc, url) }
	case "gather":
		scrape = func() error { _, err := reg.Gather(); return err }
	default:
		b.Fatalf("-overhead.scrape %q: want http, identity or gather", *overheadScrape)
	}

	workers := 8 * runtime.GOMAXPROCS(0)
	run := func(d time.Duration, scraping bool) (opsPerSec float64, scrapes scrapeTally) {
		stop := make(chan struct{})
		scraperDone := make(chan scrapeTally, 1)
		if scraping {
			go func() { scraperDone <- scrapeEvery(b, scrape, *overheadEvery, stop) }()
		}
		counts := make(chan int, workers)
		start := time.Now()
		for range workers {
			go func() { counts <- tunnelUntil(b, server, client, stop) }()
		}
		time.Sleep(d)
		close(stop)
		ops := 0
		for range workers {
			ops += <-counts
		}
		elapsed := time.Since(start) // and the operations under way at stop, a few ms at most
		if scraping {
			scrapes = <-scraperDone
		}
		return float64(ops) / elapsed.Seconds(), scrapes
	}

	ops, _ := run(*overheadWarmUp, true) // the client's capacity, the first scrape's allocations
	b.Logf("warm-up  %6.0f ops/s", ops)
	var without, with, ratios []float64
	var scrapes scrapeTally
	for i := range *overheadRounds {
		var pair [2]float64 // without, with
		for j := range 2 {
			scraping := (i+j)%2 == 1 // round 1: without, with; round 2: with, without; ...
			ops, s := run(*overheadRound, scraping)
			if scraping {
				pair[1] = ops
				scrapes.n, scrapes.sum = scrapes.n+s.n, scrapes.sum+s.sum
			} else {
				pair[0] = ops
			}
		}
		without, with, ratios = append(without, pair[0]), append(with, pair[1]), append(ratios, pair[1]/pair[0])
		b.Logf("round %2d without %6.0f ops/s, with %6.0f ops/s, ratio %.3f", i+1, pair[0], pair[1], pair[1]/pair[0])
	}
	if b.Failed() || len(ratios) == 0 {
		return
	}
	mo, mw, r := median(without), median(with), median(ratios)
	b.ReportMetric(mo, "without-ops/s")
	b.ReportMetric(mw, "with-ops/s")
	b.ReportMetric(r, "ratio")
	b.ReportMetric(float64(scrapes.sum.Microseconds())/float64(max(scrapes.n, 1)), "µs/scrape")
	b.Logf("median without %.0f ops/s, with %.0f ops/s (%s scrape every %v); median ratio %.3f (%+.1f%%); %d scrapes, %v each on average",
		mo, mw, *overheadScrape, *overheadEvery, r, 100*(r-1), scrapes.n, scrapes.sum/time.Duration(max(scrapes.n, 1)))
}

// tunnelUntil runs BenchmarkTunnel's round trip until stop closes and returns how many it made.
func tunnelUntil(b *testing.B, server, client *quicpool.Pool, stop <-chan struct{}) int {
	payload := make([]byte, 1024)
	buf := make([]byte, len(payload))
	n := 0
	for {
		select {
		case <-stop:
			return n
		default:
		}
		id, sc, err := server.IncomingGet(5 * time.Second)
		if err != nil {
			b.Error(err)
			return n
		}
		cc, err := client.OutgoingGet(id, 5*time.Second)
		if err != nil {
			b.Error(err)
			return n
		}
		go func() { sc.Write(payload) }()
		if _, err := io.ReadFull(cc, buf); err != nil {
			b.Error(err)
			return n
		}
		go func() { cc.Write(payload) }()
		if _, err := io.ReadFull(sc, buf); err != nil {
			b.Error(err)
			return n
		}
		sc.Close()
		cc.Close()
		n++
	}
}

// scrapeTally is how many scrapes a scraper made and how long they took in all.
type scrapeTally struct {
	n   int
	sum time.Duration
}

// scrapeEvery calls scrape every interval until stop closes and returns how many scrapes it
// made and their total duration.
func scrapeEvery(b *testing.B, scrape func() error, every time.Duration, stop <-chan struct{}) (s scrapeTally) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return s
		case <-tick.C:
		}
		start := time.Now()
		if err := scrape(); err != nil {
			b.Error(err)
			return s
		}
		s.n++
		s.sum += time.Since(start)
	}
}

// get GETs url as Prometheus does (keep-alive, gzip) and reads the body.
func get(hc *http.Client, url string) error {
	resp, err := hc.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("scrape: %s", resp.Status)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// median is the median of xs (0 for none).
func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
