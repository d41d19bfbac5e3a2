package quicpoolprom

import (
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/quicpool/quicpool"
	"github.com/quicpool/quicpool/messages"
)

// Collector is a prometheus.Collector over one or more pools. At every scrape it takes one
// Stats snapshot of each pool (one message round trip to the pool's coordinator) and turns it
// into constant metrics; it keeps no state of its own, so concurrent scrapes are safe and a
// scrape costs the pools nothing but that snapshot.
//
// A closed pool keeps being exported with its last state (counters frozen, quicpool_running 0,
// quicpool_closed 1, no per-connection metrics) for as long as the collector is registered: to
// stop exporting it, unregister the collector and register a new one without it.
type Collector struct {
	pools []*quicpool.Pool
}

// NewCollector returns a collector of the given pools. Each pool's metrics carry its name
// (quicpool.WithName, Stats.Name) as the label pool and its side ("client" or "server") as the
// label side: pools of the same side need distinct names, or a scrape reports the second one as
// an error. It panics on a nil pool.
func NewCollector(pools ...*quicpool.Pool) *Collector {
	for i, p := range pools {
		if p == nil {
			panic(fmt.Sprintf("quicpoolprom: pool %d is nil", i+1))
		}
	}
	return &Collector{pools: append([]*quicpool.Pool(nil), pools...)}
}

// Describe sends the descriptors of every metric the collector may export.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range descs {
		ch <- d
	}
}

// Collect takes a snapshot of each pool and sends its metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	seen := make(map[[2]string]bool, len(c.pools))
	for _, p := range c.pools {
		s := p.Stats()
		if s.Side == "" {
			continue // a pool whose last state was lost at Close (its actors did not stop in time)
		}
		key := [2]string{s.Name, s.Side}
		if seen[key] {
			ch <- prometheus.NewInvalidMetric(idleStreams,
				fmt.Errorf("quicpoolprom: two %s pools named %q: name them apart with quicpool.WithName", s.Side, s.Name))
			continue
		}
		seen[key] = true
		collect(ch, s)
	}
}

var (
	poolLabels = []string{"pool", "side"}
	connLabels = []string{"pool", "side", "shard"}
	descs      []*prometheus.Desc // every metric the collector may export
	names      []string           // their names
)

func newDesc(name, help string, labels []string) *prometheus.Desc {
	d := prometheus.NewDesc("quicpool_"+name, help, labels, nil)
	descs, names = append(descs, d), append(names, "quicpool_"+name)
	return d
}

// The pool's state.
var (
	idleStreams        = newDesc("idle_streams", "Idle streams the pool can hand out now.", poolLabels)
	inUseStreams       = newDesc("in_use_streams", "Streams handed out whose write side is still open, over the connections up.", poolLabels)
	capacityStreams    = newDesc("capacity_streams", "Idle streams the pool aims to keep (tuned between min and max on a client).", poolLabels)
	minCapacityStreams = newDesc("min_capacity_streams", "The pool's minimum capacity.", poolLabels)
	maxCapacityStreams = newDesc("max_capacity_streams", "The pool's maximum capacity.", poolLabels)
	waiters            = newDesc("waiters", "Get/Accept calls waiting for a stream.", poolLabels)
	openingStreams     = newDesc("opening_streams", "Streams being opened (client) or handshaken and waiting for an ID (server).", poolLabels)
	peerClosedStreams  = newDesc("peer_closed_streams", "Streams the peer closed before this side took them, still reachable by ID.", poolLabels)
	withheldStreams    = newDesc("withheld_streams", "Idle streams of connections that are silent now (or, on a server, whose client reconnected), not handed out until their connection answers again.", poolLabels)
	shards             = newDesc("shards", "Connections the pool keeps (client) or accepts (server).", poolLabels)
	shardsUp           = newDesc("shards_up", "Connections up.", poolLabels)
	drainingConns      = newDesc("draining_connections", "Client only: connections a standby took over from, out of the pool but open until the streams handed out from them are done.", poolLabels)
	running            = newDesc("running", "1 while the pool serves: a client has a connection up, a server listens.", poolLabels)
	closed             = newDesc("closed", "1 once the pool is closed: its metrics are its last state.", poolLabels)
	applicationErrors  = newDesc("application_errors", "The application's error counter (Pool.AddError; Pool.ResetError sets it to 0).", poolLabels)
	refillInterval     = newDesc("refill_interval_seconds", "A client pool's refill interval, tuned between its bounds.", poolLabels)
)

// The pool's counters, from its start.
var (
	streamsOpened    = newDesc("streams_opened_total", "Streams that completed their handshake.", poolLabels)
	streamsHandedOut = newDesc("streams_handed_out_total", "Streams handed out to callers.", poolLabels)
	streamsDiscarded = newDesc("streams_discarded_total", "Idle streams the pool closed: flushed, excess, duplicate, or closed by the peer and not taken.", poolLabels)
	streamsLost      = newDesc("streams_lost_total", "Idle streams that ended with their connection (down, closed for a protocol violation, or the pool closed) without being handed out.", poolLabels)
	streamsFailed    = newDesc("streams_failed_total", "Stream opens (client) or handshakes (server) that failed.", poolLabels)
	reconnects       = newDesc("reconnects_total", "Connections that came up in a slot that had held one before.", poolLabels)
	repliesDropped   = newDesc("replies_dropped_total", "Requests whose reply channel could not take the answer.", poolLabels)
	restarts         = newDesc("restarts_total", "A client's connections redialed after a failure.", poolLabels)
	violations       = newDesc("protocol_violations_total", "Connections a client closed because its server broke the protocol.", poolLabels)
	refused          = newDesc("connections_refused_total", "Connections a server refused, by reason: address (not allowed at the handshake), moved (its address changed to one not allowed), certificate (no acceptable client certificate), full (no free slot). The reasons add up to every refusal.", append(poolLabels[:2:2], "reason"))
	streamsReclaimed = newDesc("streams_reclaimed_total", "Idle streams a server took back from a connection above its fair share.", poolLabels)
	waitSeconds      = newDesc("wait_seconds", "How long served Get/Accept calls waited for their stream (0 for a stream that was idle).", poolLabels)
)

// Each connection up, by shard slot. Its counters start at 0 when a new connection comes up in
// the slot.
var (
	connIdleStreams     = newDesc("connection_idle_streams", "The connection's streams Accept may hand out now.", connLabels)
	connInUseStreams    = newDesc("connection_in_use_streams", "The connection's streams handed out whose write side is still open.", connLabels)
	connStreamsOpened   = newDesc("connection_streams_opened_total", "The connection's streams that completed their handshake.", connLabels)
	connStreamsFailed   = newDesc("connection_streams_failed_total", "Stream opens (client) or handshakes (server) on the connection that failed.", connLabels)
	connSmoothedRTT     = newDesc("connection_smoothed_rtt_seconds", "The connection's smoothed round-trip time (RFC 9002).", connLabels)
	connLatestRTT       = newDesc("connection_latest_rtt_seconds", "The connection's last round-trip time sample.", connLabels)
	connSentPackets     = newDesc("connection_sent_packets_total", "Packets the connection sent.", connLabels)
	connReceivedPackets = newDesc("connection_received_packets_total", "Packets the connection received.", connLabels)
	connLostPackets     = newDesc("connection_lost_packets_total", "Packets the connection declared lost.", connLabels)
	connSentBytes       = newDesc("connection_sent_bytes_total", "Bytes the connection sent.", connLabels)
	connReceivedBytes   = newDesc("connection_received_bytes_total", "Bytes the connection received.", connLabels)
	connUpSince         = newDesc("connection_up_since_timestamp_seconds", "When the connection came up, in seconds since the Unix epoch.", connLabels)
	connLastHeard       = newDesc("connection_last_heard_seconds", "How long ago the last packet from the peer arrived (updated every second while it answers).", connLabels)
	connSuspect         = newDesc("connection_suspect", "1 while the peer has been silent for longer than the path's normal silence: its streams are not handed out.", connLabels)
)

// collect sends the metrics of one pool's snapshot.
func collect(ch chan<- prometheus.Metric, s messages.Stats) {
	labels := []string{s.Name, s.Side}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}

	inUse := 0
	for _, cs := range s.Conns {
		inUse += cs.InUse
	}
	gauge(idleStreams, float64(s.Idle))
	gauge(inUseStreams, float64(inUse))
	gauge(capacityStreams, float64(s.Capacity))
	gauge(minCapacityStreams, float64(s.MinCap))
	gauge(maxCapacityStreams, float64(s.MaxCap))
	gauge(waiters, float64(s.Waiters))
	gauge(openingStreams, float64(s.Opening))
	gauge(peerClosedStreams, float64(s.PeerClosed))
	gauge(withheldStreams, float64(s.Withheld))
	gauge(shards, float64(s.Shards))
	gauge(shardsUp, float64(s.ShardsUp))
	gauge(drainingConns, float64(s.Draining))
	gauge(running, boolean(s.Running))
	gauge(closed, boolean(s.Closed))
	gauge(applicationErrors, float64(s.Errors))

	counter(streamsOpened, s.Opened)
	counter(streamsHandedOut, s.HandedOut)
	counter(streamsDiscarded, s.Discarded)
	counter(streamsLost, s.Lost)
	counter(streamsFailed, s.Failed)
	counter(reconnects, s.Reconnects)
	counter(repliesDropped, s.Dropped)
	if s.Side == "client" {
		gauge(refillInterval, s.Interval.Seconds())
		counter(restarts, s.Restarts)
		counter(violations, s.Violations)
	} else {
		r := s.Refusals
		for _, reason := range []struct {
			name string
			n    uint64
		}{
			{"address", r.NotAllowed},
			{"moved", r.Moved},
			{"certificate", r.Certificate},
			{"full", r.Full},
		} {
			ch <- prometheus.MustNewConstMetric(refused, prometheus.CounterValue, float64(reason.n), s.Name, s.Side, reason.name)
		}
		counter(streamsReclaimed, s.Reclaimed)
	}
	ch <- waitHistogram(s)

	// Should a slot ever show two connections (one taking over from the other), export the
	// newer: two series with the same labels would fail the whole scrape.
	chosen := make(map[int]int, len(s.Conns)) // slot: index in s.Conns
	for i, cs := range s.Conns {
		if j, ok := chosen[cs.Slot]; !ok || cs.Since.After(s.Conns[j].Since) {
			chosen[cs.Slot] = i
		}
	}
	for i, cs := range s.Conns {
		if chosen[cs.Slot] == i {
			collectConn(ch, labels, cs)
		}
	}
}

// collectConn sends the metrics of one connection.
func collectConn(ch chan<- prometheus.Metric, labels []string, cs messages.ConnStats) {
	conn := append(labels[:2:2], strconv.Itoa(cs.Slot))
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, conn...)
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), conn...)
	}
	gauge(connIdleStreams, float64(cs.Idle))
	gauge(connInUseStreams, float64(cs.InUse))
	counter(connStreamsOpened, cs.Opened)
	counter(connStreamsFailed, cs.Failed)
	gauge(connSmoothedRTT, cs.SmoothedRTT.Seconds())
	gauge(connLatestRTT, cs.LatestRTT.Seconds())
	counter(connSentPackets, cs.PacketsSent)
	counter(connReceivedPackets, cs.PacketsReceived)
	counter(connLostPackets, cs.PacketsLost)
	counter(connSentBytes, cs.BytesSent)
	counter(connReceivedBytes, cs.BytesReceived)
	gauge(connUpSince, unixSeconds(cs.Since))
	gauge(connLastHeard, cs.LastHeard.Seconds())
	gauge(connSuspect, boolean(cs.Suspect))
}

// waitHistogram is the pool's wait histogram as a Prometheus histogram: cumulative buckets with
// the upper bounds of messages.WaitBounds, the waits above the last bound in +Inf.
func waitHistogram(s messages.Stats) prometheus.Metric {
	h := s.Wait
	bounds := messages.WaitBounds()
	buckets := make(map[float64]uint64, len(bounds))
	var cumulative uint64
	for i, b := range bounds {
		cumulative += h.Counts[i]
		buckets[b.Seconds()] = cumulative
	}
	count := max(h.Count, cumulative+h.Counts[len(bounds)]) // +Inf is never below a finite bucket
	return prometheus.MustNewConstHistogram(waitSeconds, count, h.Sum.Seconds(), buckets, s.Name, s.Side)
}

func boolean(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unixSeconds(t time.Time) float64 {
	return float64(t.UnixNano()) / 1e9
}
