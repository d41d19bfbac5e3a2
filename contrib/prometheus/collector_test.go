package quicpoolprom

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/quicpool/quicpool"
	"github.com/quicpool/quicpool/messages"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// traffic is three pools after known traffic: a server and its client (both named "edge-1")
// whose connection was closed once by the server and came back, then took streams `takes`
// times, `held` of them still open on both sides; and a server ("strict") that refused a client
// dialing from an address it does not allow.
type traffic struct {
	server, client, strict *quicpool.Pool
	takes, held            int
}

func knownTraffic(t *testing.T) traffic {
	t.Helper()
	tr := traffic{takes: 5, held: 2}
	tr.server = startServer(t, 8, quicpool.WithName("edge-1"))
	tr.client = startClient(t, 8, 8, tr.server.Addr(), quicpool.WithName("edge-1"))

	// One forced reconnect: the server closes the client's connection, taken through an
	// embedder's Get (one more served Accept on the server); the client redials into its slot.
	reply := make(chan messages.Stream, 1)
	tr.server.Engine().Send(tr.server.Coordinator(), messages.Get{Deadline: time.Now().Add(5 * time.Second), Reply: reply})
	got := <-reply
	require.NoError(t, got.Err)
	require.NoError(t, got.Conn.CloseWithError(0, "test: forced reconnect"))
	_ = got.Stream.Close()
	waitFor(t, tr.client, "the client's reconnect", func(s messages.Stats) bool { return s.Reconnects == 1 && s.ShardsUp == 1 })
	waitFor(t, tr.server, "the client back on the server", func(s messages.Stats) bool { return s.Reconnects == 1 && s.ShardsUp == 1 })

	for i := range tr.takes {
		sc, cc := tunnel(t, tr.server, tr.client, []byte("ping"))
		if i >= tr.held {
			require.NoError(t, sc.Close())
			require.NoError(t, cc.Close())
			continue
		}
		t.Cleanup(func() { _ = sc.Close(); _ = cc.Close() })
	}
	inUse := func(s messages.Stats) bool { return len(s.Conns) == 1 && s.Conns[0].InUse == tr.held }
	waitFor(t, tr.server, "the server's streams in use", inUse)
	waitFor(t, tr.client, "the client's streams in use", inUse)

	// One refusal: a client dialing from 127.0.0.2, which the server does not allow.
	tr.strict = startServer(t, 8, quicpool.WithName("strict"), quicpool.WithAllowedClients("127.0.0.1"))
	stranger := quicpool.NewClientPool(1, 1, 100*time.Millisecond, time.Second, 10*time.Second,
		"1", "localhost", quicpool.StaticAddr(tr.strict.Addr()), quicpool.WithLocalAddr("127.0.0.2:0"))
	go stranger.ClientManager()
	t.Cleanup(stranger.Close)
	waitFor(t, tr.strict, "a refusal", func(s messages.Stats) bool { return s.Refused > 0 })
	return tr
}

// snapshots is a collector of fixed snapshots, so that what it exports can be compared with
// the Stats it was made from.
type snapshots []messages.Stats

func (s snapshots) Describe(ch chan<- *prometheus.Desc) { (&Collector{}).Describe(ch) }

func (s snapshots) Collect(ch chan<- prometheus.Metric) {
	for _, st := range s {
		collect(ch, st)
	}
}

// gather registers c in a new pedantic registry (which checks every metric against its
// descriptor) and returns its samples.
func gather(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	return series(t, reg)
}

// expected is what a pool's snapshot must export: every sample, by name and labels.
func expected(s messages.Stats) map[string]float64 {
	pool := map[string]string{"pool": s.Name, "side": s.Side}
	m := map[string]float64{}
	set := func(name string, v float64) { m[key("quicpool_"+name, pool)] = v }
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	inUse := 0
	for _, c := range s.Conns {
		inUse += c.InUse
	}
	set("idle_streams", float64(s.Idle))
	set("in_use_streams", float64(inUse))
	set("capacity_streams", float64(s.Capacity))
	set("min_capacity_streams", float64(s.MinCap))
	set("max_capacity_streams", float64(s.MaxCap))
	set("waiters", float64(s.Waiters))
	set("opening_streams", float64(s.Opening))
	set("peer_closed_streams", float64(s.PeerClosed))
	set("withheld_streams", float64(s.Withheld))
	set("shards", float64(s.Shards))
	set("shards_up", float64(s.ShardsUp))
	set("draining_connections", float64(s.Draining))
	set("running", b(s.Running))
	set("closed", b(s.Closed))
	set("application_errors", float64(s.Errors))
	set("streams_opened_total", float64(s.Opened))
	set("streams_handed_out_total", float64(s.HandedOut))
	set("streams_discarded_total", float64(s.Discarded))
	set("streams_lost_total", float64(s.Lost))
	set("streams_failed_total", float64(s.Failed))
	set("reconnects_total", float64(s.Reconnects))
	set("replies_dropped_total", float64(s.Dropped))
	if s.Side == "client" {
		set("refill_interval_seconds", s.Interval.Seconds())
		set("restarts_total", float64(s.Restarts))
		set("protocol_violations_total", float64(s.Violations))
	} else {
		r := s.Refusals
		for reason, n := range map[string]uint64{"address": r.NotAllowed, "moved": r.Moved,
			"certificate": r.Certificate, "full": r.Full} {
			m[key("quicpool_connections_refused_total", with(pool, "reason", reason))] = float64(n)
		}
		set("streams_reclaimed_total", float64(s.Reclaimed))
	}
	set("wait_seconds_count", float64(s.Wait.Count))
	set("wait_seconds_sum", s.Wait.Sum.Seconds())
	var cumulative uint64
	for i, bound := range messages.WaitBounds() {
		cumulative += s.Wait.Counts[i]
		m[key("quicpool_wait_seconds_bucket", with(pool, "le", fmt.Sprint(bound.Seconds())))] = float64(cumulative)
	}
	// The +Inf bucket is the count: the exposition has it, the gathered histogram does not.
	for _, c := range s.Conns {
		conn := with(pool, "shard", strconv.Itoa(c.Slot))
		set := func(name string, v float64) { m[key("quicpool_connection_"+name, conn)] = v }
		set("idle_streams", float64(c.Idle))
		set("in_use_streams", float64(c.InUse))
		set("streams_opened_total", float64(c.Opened))
		set("streams_failed_total", float64(c.Failed))
		set("smoothed_rtt_seconds", c.SmoothedRTT.Seconds())
		set("latest_rtt_seconds", c.LatestRTT.Seconds())
		set("sent_packets_total", float64(c.PacketsSent))
		set("received_packets_total", float64(c.PacketsReceived))
		set("lost_packets_total", float64(c.PacketsLost))
		set("sent_bytes_total", float64(c.BytesSent))
		set("received_bytes_total", float64(c.BytesReceived))
		set("up_since_timestamp_seconds", float64(c.Since.UnixNano())/1e9)
		set("last_heard_seconds", c.LastHeard.Seconds())
		set("suspect", b(c.Suspect))
	}
	return m
}

// The metrics follow Prometheus's naming and help conventions, on pools of both sides that have
// served, reconnected and refused.
func TestCollectAndLint(t *testing.T) {
	tr := knownTraffic(t)
	c := NewCollector(tr.server, tr.client, tr.strict)
	problems, err := testutil.CollectAndLint(c)
	require.NoError(t, err)
	assert.Empty(t, problems)

	// Every metric is exported by one pool or another.
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(c))
	families, err := reg.Gather()
	require.NoError(t, err)
	var exported []string
	for _, mf := range families {
		exported = append(exported, mf.GetName())
	}
	assert.ElementsMatch(t, names, exported)
}

// What the collector exports is the pools' Stats, sample for sample, after known traffic.
func TestMetricsMatchStats(t *testing.T) {
	tr := knownTraffic(t)
	stats := snapshots{tr.server.Stats(), tr.client.Stats(), tr.strict.Stats()}
	got := gather(t, stats)
	want := map[string]float64{}
	for _, s := range stats {
		for k, v := range expected(s) {
			want[k] = v
		}
	}
	sameSeries(t, want, got)

	// The known traffic, as exported.
	server := map[string]string{"pool": "edge-1", "side": "server"}
	client := map[string]string{"pool": "edge-1", "side": "client"}
	strict := map[string]string{"pool": "strict", "side": "server"}
	takes := float64(tr.takes)
	assert.Equal(t, takes+1, got[key("quicpool_wait_seconds_count", server)], "every Accept, and the embedder's Get")
	assert.Equal(t, takes+1, got[key("quicpool_streams_handed_out_total", server)])
	assert.Equal(t, takes, got[key("quicpool_wait_seconds_count", client)])
	assert.Equal(t, takes, got[key("quicpool_streams_handed_out_total", client)])
	assert.Equal(t, takes+1, got[key("quicpool_wait_seconds_bucket", with(server, "le", "10"))])
	assert.Equal(t, 1.0, got[key("quicpool_reconnects_total", server)])
	assert.Equal(t, 1.0, got[key("quicpool_reconnects_total", client)])
	assert.Equal(t, 1.0, got[key("quicpool_shards_up", client)])
	assert.Equal(t, 1.0, got[key("quicpool_running", client)])
	assert.Equal(t, float64(tr.held), got[key("quicpool_in_use_streams", server)])
	assert.Equal(t, float64(tr.held), got[key("quicpool_connection_in_use_streams", with(client, "shard", "0"))])
	assert.NotZero(t, got[key("quicpool_connection_smoothed_rtt_seconds", with(server, "shard", "0"))])
	assert.NotZero(t, got[key("quicpool_connection_sent_bytes_total", with(client, "shard", "0"))])
	assert.InDelta(t, float64(time.Now().Unix()), got[key("quicpool_connection_up_since_timestamp_seconds", with(server, "shard", "0"))], 60)
	assert.GreaterOrEqual(t, got[key("quicpool_connections_refused_total", with(strict, "reason", "address"))], 1.0)
	assert.Zero(t, got[key("quicpool_connections_refused_total", with(strict, "reason", "full"))])

	// The collector of the live pools exports the same series; the values that no longer move
	// are the same, and the refusals (the refused client keeps redialing) lie between the
	// snapshots taken before and after the scrape.
	live := gather(t, NewCollector(tr.server, tr.client, tr.strict))
	after := tr.strict.Stats()
	sameKeys(t, want, live)
	for _, k := range []string{
		key("quicpool_wait_seconds_count", server), key("quicpool_wait_seconds_sum", server),
		key("quicpool_streams_handed_out_total", server), key("quicpool_streams_handed_out_total", client),
		key("quicpool_reconnects_total", client), key("quicpool_in_use_streams", server),
		key("quicpool_connection_up_since_timestamp_seconds", with(server, "shard", "0")),
	} {
		assert.Equal(t, want[k], live[k], k)
	}
	refusedLive := live[key("quicpool_connections_refused_total", with(strict, "reason", "address"))]
	assert.GreaterOrEqual(t, refusedLive, want[key("quicpool_connections_refused_total", with(strict, "reason", "address"))])
	assert.LessOrEqual(t, refusedLive, float64(after.Refusals.NotAllowed))
}

// A closed pool is exported with its last state; two pools of one side with one name are an
// error of the scrape.
func TestClosedAndDuplicatePools(t *testing.T) {
	server := startServer(t, 8, quicpool.WithName("a"))
	client := startClient(t, 2, 2, server.Addr(), quicpool.WithName("a"))
	sc, cc := tunnel(t, server, client, []byte("x"))
	require.NoError(t, sc.Close())
	require.NoError(t, cc.Close())
	client.Close()

	got := gather(t, NewCollector(server, client))
	c := map[string]string{"pool": "a", "side": "client"}
	assert.Equal(t, 1.0, got[key("quicpool_closed", c)])
	assert.Equal(t, 0.0, got[key("quicpool_running", c)])
	assert.Equal(t, 1.0, got[key("quicpool_streams_handed_out_total", c)])
	assert.Equal(t, 1.0, got[key("quicpool_wait_seconds_count", c)])
	for k := range got {
		assert.NotContains(t, k, `side="client",shard=`, "a closed pool has no connection")
	}

	twin := startServer(t, 8, quicpool.WithName("a"))
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(NewCollector(server, twin)))
	_, err := reg.Gather()
	require.ErrorContains(t, err, `two server pools named "a"`)

	assert.Panics(t, func() { NewCollector(server, nil) })
}

// sameSeries fails the test for every sample missing from got, unexpected in it, or of another
// value than in want.
func sameSeries(t *testing.T, want, got map[string]float64) {
	t.Helper()
	sameKeys(t, want, got)
	for k, v := range want {
		if g, ok := got[k]; ok && g != v {
			t.Errorf("%s = %v, want %v", k, g, v)
		}
	}
}

// sameKeys fails the test for every sample missing from got or unexpected in it.
func sameKeys(t *testing.T, want, got map[string]float64) {
	t.Helper()
	for k := range want {
		if _, ok := got[k]; !ok {
			t.Errorf("missing %s", k)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected %s", k)
		}
	}
}
