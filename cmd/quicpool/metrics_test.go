package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var metricsLine = regexp.MustCompile(`^quicpool (?:server|client): metrics on (http://\S+/metrics)$`)

// metricsURL waits for the line in which a process prints where it serves its metrics.
func metricsURL(p *process) string {
	p.t.Helper()
	var seen int
	return metricsLine.FindStringSubmatch(p.expect(p.stdout, &seen, metricsLine.String(), startupTimeout))[1]
}

// scrape GETs a /metrics URL and returns its samples by name and labels, as the exposition
// writes them: `name{label="value",...}`.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v\n%s", url, resp.Status, err, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("GET %s: Content-Type %q, want the text exposition format", url, ct)
	}
	samples := map[string]float64{}
	for line := range strings.SplitSeq(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("GET %s: sample %q: %v", url, line, err)
		}
		samples[line[:i]] = v
	}
	return samples
}

// The server and the client serve their pool's metrics with -metrics (labelled with -name), and
// write qlog traces with -qlog.
func TestMetricsAndQlog(t *testing.T) {
	t.Parallel()
	web := startWeb(t)
	qlog := filepath.Join(t.TempDir(), "qlog")
	server := startServer(t, "-listen", "127.0.0.1:0", "-target", web, "-state", t.TempDir(),
		"-metrics", "127.0.0.1:0", "-name", "edge-1", "-qlog", qlog)
	serverMetrics := metricsURL(server.process)
	client := startClient(t, append(server.clientArgs, "-metrics", "127.0.0.1:0", "-name", "edge-1")...)
	clientMetrics := metricsURL(client.process)
	for range 3 {
		mustGet(t, client.listen)
	}

	s := scrape(t, serverMetrics)
	for _, want := range []struct {
		sample string
		min    float64
	}{
		{`quicpool_running{pool="edge-1",side="server"}`, 1},
		{`quicpool_shards_up{pool="edge-1",side="server"}`, 1},
		{`quicpool_streams_handed_out_total{pool="edge-1",side="server"}`, 3},
		{`quicpool_wait_seconds_count{pool="edge-1",side="server"}`, 3},
		{`quicpool_connection_received_bytes_total{pool="edge-1",shard="0",side="server"}`, 1},
		{`quicpool_connection_smoothed_rtt_seconds{pool="edge-1",shard="0",side="server"}`, 1e-9},
		{`quicpool_connections_refused_total{pool="edge-1",reason="address",side="server"}`, 0},
	} {
		v, ok := s[want.sample]
		if !ok {
			t.Errorf("the server's metrics have no %s", want.sample)
		} else if v < want.min {
			t.Errorf("%s = %v, want at least %v", want.sample, v, want.min)
		}
	}
	if _, ok := s["go_goroutines"]; !ok {
		t.Error("the server's metrics have no Go runtime metrics")
	}

	c := scrape(t, clientMetrics)
	for _, sample := range []string{
		`quicpool_running{pool="edge-1",side="client"}`,
		`quicpool_shards_up{pool="edge-1",side="client"}`,
	} {
		if c[sample] != 1 {
			t.Errorf("the client's %s = %v, want 1", sample, c[sample])
		}
	}
	if c[`quicpool_streams_handed_out_total{pool="edge-1",side="client"}`] < 3 {
		t.Errorf("the client handed out %v streams, want at least 3", c[`quicpool_streams_handed_out_total{pool="edge-1",side="client"}`])
	}

	// The server traces its connection to the client (complete once it has closed).
	traces, err := filepath.Glob(filepath.Join(qlog, "*_server.sqlog"))
	if err != nil || len(traces) == 0 {
		t.Errorf("no qlog trace of the server's connection in %s (%v)", qlog, err)
	}
	client.stop(defaultGrace + time.Second)
	server.stop(defaultGrace + time.Second)
	for _, trace := range traces {
		raw, err := os.ReadFile(trace)
		if err != nil || len(raw) == 0 || raw[0] != 0x1e {
			t.Errorf("%s: not a JSON-SEQ qlog file (%d bytes, %v)", trace, len(raw), err)
		}
	}
}

// -metrics on an address that is taken is an error at startup, on either side, before the
// command says it listens.
func TestMetricsAddressTaken(t *testing.T) {
	t.Parallel()
	web := startWeb(t)
	for _, args := range [][]string{
		{"server", "-listen", "127.0.0.1:0", "-target", web, "-state", t.TempDir(), "-metrics", web},
		{"client", "-server", "127.0.0.1:1", "-insecure", "-listen", "127.0.0.1:0", "-metrics", web},
	} {
		p := startProcess(t, args[0], args...)
		if code := p.wait(startupTimeout); code != 1 {
			t.Errorf("%s: exit code %d, want 1", args[0], code)
		}
		if !strings.Contains(p.stderr.String(), "-metrics") {
			t.Errorf("%s: stderr does not name -metrics:\n%s", args[0], p.stderr)
		}
		if strings.Contains(p.stdout.String(), "listening on") {
			t.Errorf("%s: says it listens although it stops:\n%s", args[0], p.stdout)
		}
	}
}
