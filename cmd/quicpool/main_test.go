package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestDemo runs a short demo in-process and checks that round trips went through and none
// failed.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	cfg := demoConfig{Workers: 4, Duration: 500 * time.Millisecond, MinCap: 4, MaxCap: 8, Size: 256}
	sum, err := runDemo(ctx, cfg, &out)
	if err != nil {
		t.Fatalf("runDemo: %v\n%s", err, out.String())
	}
	if sum.Ops == 0 {
		t.Errorf("no round trips\n%s", out.String())
	}
	if sum.Errors != 0 {
		t.Errorf("%d failed round trips, first: %v\n%s", sum.Errors, sum.FirstErr, out.String())
	}
	if sum.P50 <= 0 || sum.P99 < sum.P50 {
		t.Errorf("latency p50 %v p99 %v", sum.P50, sum.P99)
	}
	if sum.Client.HandedOut < uint64(sum.Ops) || sum.Server.HandedOut < uint64(sum.Ops) {
		t.Errorf("handed out server %d client %d, fewer than %d ops", sum.Server.HandedOut, sum.Client.HandedOut, sum.Ops)
	}
	if !strings.Contains(out.String(), "p50") {
		t.Errorf("no summary in output:\n%s", out.String())
	}
}

// TestRunUsage checks the exit codes and output of the command line without a demo.
func TestRunUsage(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		toStdout bool
	}{
		{nil, 0, true},
		{[]string{"help"}, 0, true},
		{[]string{"bogus"}, 2, false},
		{[]string{"demo", "-workers", "0"}, 2, false},
		{[]string{"demo", "-nosuchflag"}, 2, false},
		{[]string{"server"}, 2, false}, // no -target
		{[]string{"server", "-target", "127.0.0.1:1", "-cert", "c.pem"}, 2, false},
		{[]string{"client", "-tls", "3"}, 2, false},
		{[]string{"client", "-fingerprint", "abc"}, 2, false},
		{[]string{"client", "extra"}, 2, false},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tc.args, &stdout, &stderr)
		if code != tc.code {
			t.Errorf("run(%q) = %d, want %d", tc.args, code, tc.code)
		}
		out := &stderr
		if tc.toStdout {
			out = &stdout
		}
		if out.Len() == 0 {
			t.Errorf("run(%q) wrote nothing where expected (stdout=%v)", tc.args, tc.toStdout)
		}
		for _, cmd := range []string{"demo", "server", "client"} {
			if tc.code == 0 && !strings.Contains(stdout.String(), "\n  "+cmd+" ") {
				t.Errorf("run(%q): usage does not list %s:\n%s", tc.args, cmd, stdout.String())
			}
		}
	}
}

func TestPercentile(t *testing.T) {
	d := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if got := percentile(d, 0.5); got != 5 {
		t.Errorf("p50 = %d, want 5", got)
	}
	if got := percentile(d, 0.99); got != 10 {
		t.Errorf("p99 = %d, want 10", got)
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("p50 of nothing = %d, want 0", got)
	}
}
