// Package quicpoolprom exports the state and counters of quicpool pools as Prometheus metrics.
//
// A Collector reads each pool's Stats at scrape time, one message round trip to the pool's
// coordinator per pool per scrape, and keeps nothing between scrapes: it costs the pools' hot
// path nothing. Every metric is named quicpool_..., labelled with the pool's name (pool, set with
// quicpool.WithName) and side (side, "client" or "server"); the per-connection metrics also carry
// the connection's shard slot (shard). The README's Metrics section lists them all, and
// dashboard.json, in this module's directory, is a Grafana dashboard built from them.
//
// Register a collector of the pools of a process and serve the registry:
//
//	server, err := quicpool.NewServer(":4433", tlsConfig, quicpool.WithName("edge"))
//	if err != nil {
//		return err
//	}
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(quicpoolprom.NewCollector(server))
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// A closed pool is exported with its last state (quicpool_closed 1) until the collector is
// unregistered: register a new collector without it to drop it.
//
// The module is separate from quicpool's own so that quicpool depends on no Prometheus code.
package quicpoolprom
