package quicpoolprom_test

import (
	"crypto/tls"
	"log"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/quicpool/quicpool"
	quicpoolprom "github.com/quicpool/quicpool/contrib/prometheus"
)

// A server pool and its metrics on http://127.0.0.1:9100/metrics.
func ExampleNewCollector() {
	var tlsConfig *tls.Config // with the server's certificate
	server, err := quicpool.NewServer(":4433", tlsConfig, quicpool.WithName("edge"))
	if err != nil {
		log.Fatal(err)
	}
	defer server.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(quicpoolprom.NewCollector(server))
	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	log.Fatal(http.ListenAndServe("127.0.0.1:9100", nil))
}
