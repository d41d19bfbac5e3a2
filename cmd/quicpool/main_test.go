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

// TestRunUsage checks the exit codes and output of the command line without running a command.
func TestRunUsage(t *testing.T) {
	fp := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		args     []string
		code     int
		toStdout bool
		says     string
	}{
		{nil, 2, false, "usage: quicpool <command>"},
		{[]string{"help"}, 0, true, "usage: quicpool <command>"},
		{[]string{"bogus"}, 2, false, "unknown command"},
		{[]string{"demo", "-workers", "0"}, 2, false, "-workers"},
		{[]string{"demo", "-nosuchflag"}, 2, false, "nosuchflag"},
		{[]string{"server"}, 2, false, "-target is required"},
		{[]string{"server", "-target", "127.0.0.1:1", "-cert", "c.pem"}, 2, false, "-cert and -key go together"},
		{[]string{"server", "-target", "127.0.0.1:1", "-allow", "10.0.0.0/8,nonsense"}, 2, false, `"nonsense" is neither`},
		{[]string{"server", "-target", "127.0.0.1:1", "-clients", "0"}, 2, false, "-clients"},
		{[]string{"server", "-target", "127.0.0.1:1", "-state", ""}, 2, false, "-state DIR"},
		{[]string{"server", "-target", "127.0.0.1:1", "-metrics", "9100"}, 2, false, "-metrics"},
		{[]string{"client", "-server", "h:1", "-insecure", "-name", strings.Repeat("n", 65)}, 2, false, "-name"},
		{[]string{"client"}, 2, false, "-server HOST:PORT is required"},
		{[]string{"client", "-server", "h:1"}, 2, false, "-insecure"},
		{[]string{"client", "-server", "h:1", "-fingerprint", "abc"}, 2, false, "not the hex of a SHA-256"},
		{[]string{"client", "-server", "h:1", "-fingerprint", fp, "-insecure"}, 2, false, "exclude each other"},
		{[]string{"client", "-server", "h:1", "-tls", "1"}, 2, false, "-tls 1"},
		{[]string{"client", "-server", "h:1", "-tls", "0"}, 2, false, "add -insecure"},
		{[]string{"client", "-server", "h:1", "-tls", "2", "-fingerprint", fp}, 2, false, "-tls 2"},
		{[]string{"client", "-server", "h:1", "-tls", "3", "-insecure"}, 2, false, `-tls "3"`},
		{[]string{"client", "-server", "h:1", "-insecure", "-servername", "x"}, 2, false, "-servername"},
		{[]string{"client", "-server", "h:1", "-insecure", "-max", "4", "-min", "8"}, 2, false, "-max"},
		{[]string{"client", "-insecure", "-server", "h:1", "extra"}, 2, false, "unexpected arguments"},
		{[]string{"client", "-insecure", "-server", "127.0.0.1:0"}, 2, false, "the port must be a number from 1 to 65535"},
		{[]string{"client", "-insecure", "-server", "127.0.0.1:99999"}, 2, false, "-server 127.0.0.1:99999: the port"},
		{[]string{"client", "-insecure", "-server", "h:1", "-listen", "127.0.0.1"}, 2, false, "-listen"},
		{[]string{"client", "-insecure", "-server", "h:1", "-stats", "1ns"}, 2, false, "-stats must be 0 (none) or at least 1s"},
		{[]string{"server", "-target", "127.0.0.1:1", "-allow", ""}, 2, false, "empty value"},
		{[]string{"server", "-target", "127.0.0.1:1", "-allow", " , "}, 2, false, "empty value"},
		{[]string{"server", "-target", "127.0.0.1:1", "-allow", "10.0.0.1,"}, 2, false, "empty value"},
		{[]string{"server", "-target", "127.0.0.1:99999"}, 2, false, "-target 127.0.0.1:99999: the port"},
		{[]string{"server", "-target", ":0"}, 2, false, "-target :0: the port"},
		{[]string{"server", "-target", "127.0.0.1:nosuchservice"}, 2, false, "-target 127.0.0.1:nosuchservice: the port"},
		{[]string{"server", "-target", "127.0.0.1:1", "-listen", "127.0.0.1"}, 2, false, "-listen"},
		{[]string{"server", "-target", "127.0.0.1:1", "-listen", "127.0.0.1:99999"}, 2, false, "-listen 127.0.0.1:99999: the port"},
		{[]string{"server", "-target", "127.0.0.1:1", "-stats", "1ns"}, 2, false, "-stats must be 0 (none) or at least 1s"},
		{[]string{"client", "-server", "h:1", "-tls", "0", "-ca", "ca.pem"}, 2, false, "would ignore -ca"},
		{[]string{"client", "-server", "h:1", "-tls", "1", "-ca", "ca.pem"}, 2, false, "use -tls 2 with -ca"},
		{[]string{"client", "-insecure", "-server", "h:1", "-keepalive", "1ms"}, 2, false, "-keepalive must be between 1s and 24h"},
		{[]string{"server", "-target", "127.0.0.1:1", "-keepalive", "25h"}, 2, false, "-keepalive must be between 1s and 24h"},
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
		if !strings.Contains(out.String(), tc.says) {
			t.Errorf("run(%q) wrote %q, want it to say %q (stdout=%v)", tc.args, out.String(), tc.says, tc.toStdout)
		}
		if strings.HasPrefix(tc.says, "usage") {
			for _, cmd := range []string{"demo", "server", "client"} {
				if !strings.Contains(out.String(), "\n  "+cmd+" ") {
					t.Errorf("run(%q): usage does not list %s:\n%s", tc.args, cmd, out.String())
				}
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
