package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/quicpool/quicpool"
	quicpoolprom "github.com/quicpool/quicpool/contrib/prometheus"
)

// observeConfig is what the flags for watching a tunnel command's pool set: -name, -metrics
// and -qlog.
type observeConfig struct {
	Name    string // the pool's name: the pool label of its metrics
	Metrics string // TCP address to serve /metrics on; "" serves none
	Qlog    string // directory of the connections' qlog traces; "" writes none
}

func (o *observeConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&o.Name, "name", "", "the pool's name: the pool label of its metrics, and a pool attribute of its log lines with -debug")
	fs.StringVar(&o.Metrics, "metrics", "", "serve Prometheus metrics at http://ADDR/metrics, such as 127.0.0.1:9100 (port 0 picks one; the address is printed); default: none")
	fs.StringVar(&o.Qlog, "qlog", "", "write a qlog trace of every QUIC connection into this directory (created if missing), to open in qvis; costs CPU and disk, for investigations")
}

func (o observeConfig) validate() error {
	if len(o.Name) > 64 || strings.IndexFunc(o.Name, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return errors.New("-name must be printable text of at most 64 bytes")
	}
	if o.Metrics != "" {
		if err := checkAddr("-metrics", "tcp", o.Metrics, true); err != nil {
			return err
		}
	}
	return nil
}

// options returns the pool options of the flags, after making the qlog directory.
func (o observeConfig) options() ([]quicpool.Option, error) {
	var opts []quicpool.Option
	if o.Name != "" {
		opts = append(opts, quicpool.WithName(o.Name))
	}
	if o.Qlog != "" {
		if err := os.MkdirAll(o.Qlog, 0o755); err != nil {
			return nil, fmt.Errorf("-qlog: %w", err)
		}
		opts = append(opts, quicpool.WithQlogDir(o.Qlog))
	}
	return opts, nil
}

// serveMetrics serves the pool's metrics, with the Go runtime's and the process's, at
// http://ADDR/metrics when -metrics is set, and writes the address to w as
// "quicpool COMMAND: metrics on http://ADDR/metrics". stop shuts the server down.
func (o observeConfig) serveMetrics(command string, p *quicpool.Pool, w io.Writer) (stop func(), err error) {
	if o.Metrics == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", o.Metrics)
	if err != nil {
		return nil, fmt.Errorf("-metrics: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(quicpoolprom.NewCollector(p),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	// Uncompressed: gzip costs more CPU than the page saves on a scrape every few seconds (see the
	// README's Metrics section).
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{MaxRequestsInFlight: 4, DisableCompression: true}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln) // ends with http.ErrServerClosed at stop
	}()
	fmt.Fprintf(w, "quicpool %s: metrics on http://%s/metrics\n", command, ln.Addr())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-served
	}, nil
}
