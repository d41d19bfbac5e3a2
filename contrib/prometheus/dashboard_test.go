package quicpoolprom

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/quicpool/quicpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID      int     `json:"id"`
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"` // a row's
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

var metricName = regexp.MustCompile(`\bquicpool_[a-zA-Z0-9_]+`)

// Every metric dashboard.json queries is one the collector exports (a histogram's _bucket,
// _sum and _count series are its own), and the dashboard has the panels the README describes.
func TestDashboardQueriesExportedMetrics(t *testing.T) {
	raw, err := os.ReadFile("dashboard.json")
	require.NoError(t, err)
	var d dashboard
	require.NoError(t, json.Unmarshal(raw, &d))

	// The expressions, by panel title, and the variables' queries.
	exprs := map[string][]string{}
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			assert.False(t, ids[p.ID], "panel id %d twice", p.ID)
			ids[p.ID] = true
			walk(p.Panels)
			if len(p.Panels) > 0 {
				continue
			}
			require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
			for _, target := range p.Targets {
				require.NotEmpty(t, target.Expr, "panel %q, query %s", p.Title, target.RefID)
				exprs[p.Title] = append(exprs[p.Title], target.Expr)
			}
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Definition != "" {
			exprs["variable "+v.Name] = append(exprs["variable "+v.Name], v.Definition)
		}
	}

	histograms := map[string]bool{"quicpool_wait_seconds": true}
	queried := map[string]bool{}
	for title, list := range exprs {
		for _, expr := range list {
			assert.True(t, balanced(expr), "panel %q: unbalanced brackets in %s", title, expr)
			names := metricName.FindAllString(expr, -1)
			assert.NotEmpty(t, names, "panel %q queries no quicpool_ metric: %s", title, expr)
			for _, name := range names {
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if base, ok := strings.CutSuffix(name, suffix); ok && histograms[base] {
						name = base
					}
				}
				queried[name] = true
			}
		}
	}

	// What a server and a client with a connection up export.
	server := startServer(t, 8, quicpool.WithName("dash"))
	client := startClient(t, 1, 1, server.Addr(), quicpool.WithName("dash"))
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(NewCollector(server, client)))
	families, err := reg.Gather()
	require.NoError(t, err)
	exported := map[string]bool{}
	for _, mf := range families {
		exported[mf.GetName()] = true
	}
	for name := range queried {
		assert.True(t, exported[name], "the dashboard queries %s, which the collector does not export", name)
	}

	// The panels the README describes, each found by what it queries.
	for _, want := range []struct{ what, pattern string }{
		{"idle streams", `quicpool_idle_streams`},
		{"streams in use", `quicpool_in_use_streams`},
		{"wait quantiles", `histogram_quantile\(0\.99, .*quicpool_wait_seconds_bucket`},
		{"RTT per shard", `quicpool_connection_smoothed_rtt_seconds`},
		{"loss per shard", `rate\(quicpool_connection_lost_packets_total.*/ rate\(quicpool_connection_sent_packets_total`},
		{"reconnect rate", `rate\(quicpool_reconnects_total`},
		{"refusal rate by reason", `by \(pool, reason\) \(rate\(quicpool_connections_refused_total`},
		{"opened rate", `rate\(quicpool_streams_opened_total`},
		{"failed rate", `rate\(quicpool_streams_failed_total`},
	} {
		re := regexp.MustCompile(want.pattern)
		found := false
		for _, list := range exprs {
			for _, expr := range list {
				found = found || re.MatchString(expr)
			}
		}
		assert.True(t, found, "no panel shows %s (%s)", want.what, want.pattern)
	}
}

// balanced reports whether the brackets of a PromQL expression pair up, outside strings.
func balanced(expr string) bool {
	var stack []rune
	pairs := map[rune]rune{')': '(', ']': '[', '}': '{'}
	inString := false
	for _, r := range expr {
		switch {
		case r == '"':
			inString = !inString
		case inString:
		case r == '(' || r == '[' || r == '{':
			stack = append(stack, r)
		case pairs[r] != 0:
			if len(stack) == 0 || stack[len(stack)-1] != pairs[r] {
				return false
			}
			stack = stack[:len(stack)-1]
		}
	}
	return len(stack) == 0 && !inString
}
