package main

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"
)

// TestQuickTunnel runs the tunnel workload briefly on quicpool and renders its report and
// charts, so that the bench keeps compiling and working. It checks only that the workload ran
// (no error, some ops, well-formed output), not any number: timing targets belong to full runs.
func TestQuickTunnel(t *testing.T) {
	small := Shape{MinCap: 8, MaxCap: 16, MinIvl: 100 * time.Millisecond, MaxIvl: time.Second, KeepAlive: 30 * time.Second}
	r := runTunnel(quicpoolImpl(), small, 4, 100*time.Millisecond, 500*time.Millisecond)
	if r.Err != "" {
		t.Fatal(r.Err)
	}
	if r.Ops == 0 || r.Errors != 0 {
		t.Fatalf("%d ops, %d errors", r.Ops, r.Errors)
	}
	if r.P50 <= 0 || r.P99 < r.P50 {
		t.Fatalf("p50 %v, p99 %v", r.P50, r.P99)
	}
	t.Logf("%.0f ops/s, p50 %v, p99 %v", r.OpsPerSec, r.P50, r.P99)

	cfg := Config{Shapes: []Shape{small}, Machine: machine(), RecoveryWait: time.Second, TunnelReps: 1, Duration: time.Second}
	res := Results{Tunnel: []TunnelResult{r}}
	for name, svg := range headlineCharts(cfg, res) {
		if err := xml.Unmarshal([]byte(svg), new(struct{})); err != nil {
			t.Errorf("%s is not well-formed: %v", name, err)
		}
	}
	md := report(Env{Date: time.Now(), Command: "test"}, cfg, res, nil)
	for _, want := range []string{"## Targets", "## 1. Tunnel round trip", "| 4 | quicpool |"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}
