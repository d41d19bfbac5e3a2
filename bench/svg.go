package main

import (
	"fmt"
	"html"
	"runtime"
	"strings"
)

// Bar is one bar of a chart: its length is Value, its caption Text.
type Bar struct {
	Value float64
	Text  string
}

// Series is one set of bars, one per category, drawn in one color.
type Series struct {
	Name string
	Bars []Bar
}

// barChart draws a horizontal bar chart as an SVG document with plain string building: one
// group of bars per category (implementation), one bar per series. With a single series, the
// first category (quicpool) is drawn in the accent color and the others in grey.
func barChart(title, note string, categories []string, series []Series) string {
	const (
		width    = 760
		left     = 150 // room for the category labels
		right    = 150 // room for the captions after the longest bar
		top      = 56
		barH     = 20
		barGap   = 4
		groupGap = 14
	)
	maxV := 0.0
	for _, s := range series {
		for _, b := range s.Bars {
			maxV = max(maxV, b.Value)
		}
	}
	if maxV == 0 {
		maxV = 1
	}
	groupH := len(series)*(barH+barGap) - barGap
	legendH := 0
	if len(series) > 1 {
		legendH = 24
	}
	height := top + len(categories)*(groupH+groupGap) + legendH + 8
	colors := []string{"#2b6cb0", "#dd6b20", "#38a169", "#805ad5"}

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="13">`+"\n",
		width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="12" y="22" font-size="16" font-weight="bold">%s</text>`+"\n", html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="12" y="40" font-size="12" fill="#555555">%s</text>`+"\n", html.EscapeString(note))
	y := top
	for ci, cat := range categories {
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n",
			left-8, y+groupH/2, html.EscapeString(cat))
		for si, s := range series {
			if ci >= len(s.Bars) {
				continue
			}
			bar := s.Bars[ci]
			w := int(bar.Value / maxV * float64(width-left-right))
			if bar.Value > 0 {
				w = max(w, 1)
			}
			color := colors[si%len(colors)]
			if len(series) == 1 && ci > 0 {
				color = "#a0aec0"
			}
			by := y + si*(barH+barGap)
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`+"\n", left, by, w, barH, color)
			fmt.Fprintf(&b, `<text x="%d" y="%d" dominant-baseline="middle">%s</text>`+"\n",
				left+w+6, by+barH/2, html.EscapeString(bar.Text))
		}
		y += groupH + groupGap
	}
	if len(series) > 1 {
		x := left
		for si, s := range series {
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/>`+"\n", x, y, colors[si%len(colors)])
			fmt.Fprintf(&b, `<text x="%d" y="%d" dominant-baseline="middle">%s</text>`+"\n", x+18, y+6, html.EscapeString(s.Name))
			x += 30 + 8*len(s.Name)
		}
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// headlineCharts returns the SVG charts of the headline workloads, by file name: tunnel ops/s
// and p99 at 16 workers, recovery time, bulk MiB/s. A workload not measured has no chart.
func headlineCharts(cfg Config, res Results) map[string]string {
	charts := map[string]string{}
	order := []string{nameQuicpool, nameNodePass, nameVistone, nameRaw, nameRawClientOpens}
	small := cfg.Shapes[0]

	var cats []string
	var ops, p99 []Bar
	for _, name := range order {
		if r := findTunnel(res.Tunnel, name, small, 16); r != nil {
			cats = append(cats, name)
			ops = append(ops, Bar{r.OpsPerSec, fmt.Sprintf("%.0f ops/s", r.OpsPerSec)})
			p99 = append(p99, Bar{float64(r.P99), dur(r.P99)})
		}
	}
	if len(cats) > 0 {
		note := fmt.Sprintf("minCap/maxCap %s, 16 workers, 1 KiB each way per op, median of %d runs, loopback, %d CPUs",
			small, cfg.TunnelReps, runtime.NumCPU())
		charts["tunnel-ops.svg"] = barChart("Tunnel round trips per second (higher is better)", note, cats, []Series{{"ops/s", ops}})
		charts["tunnel-p99.svg"] = barChart("Tunnel round trip p99 latency (lower is better)", note, cats, []Series{{"p99", p99}})
	}

	cats = nil
	alone, health := Series{Name: "on its own"}, Series{Name: "with NodePass's health check"}
	anyHealth := false
	for _, name := range order {
		a, h := findRecovery(res.Recovery, name, false), findRecovery(res.Recovery, name, true)
		if a == nil || a.Err != "" {
			continue
		}
		cats = append(cats, name)
		alone.Bars = append(alone.Bars, recoveryBar(cfg, a))
		if h != nil && h.Err == "" {
			anyHealth = true
		}
		health.Bars = append(health.Bars, recoveryBar(cfg, h))
	}
	if len(cats) > 0 {
		note := fmt.Sprintf("server down %s, then back on the same port (%s)", dur(cfg.RecoveryDown), small)
		series := []Series{alone}
		if anyHealth {
			series = append(series, health)
		}
		charts["recovery.svg"] = barChart("Time from the server's return to a served stream (lower is better)", note, cats, series)
	}

	cats = nil
	one, eight := Series{Name: "1 stream"}, Series{Name: "8 streams"}
	for _, name := range order {
		a, b := findBulk(res.Bulk, name, 1), findBulk(res.Bulk, name, 8)
		if a == nil && b == nil {
			continue
		}
		cats = append(cats, name)
		for _, x := range []struct {
			r *BulkResult
			s *Series
		}{{a, &one}, {b, &eight}} {
			if x.r == nil {
				x.s.Bars = append(x.s.Bars, Bar{0, "failed"})
			} else {
				x.s.Bars = append(x.s.Bars, Bar{x.r.MiBps, fmt.Sprintf("%.0f MiB/s", x.r.MiBps)})
			}
		}
	}
	if len(cats) > 0 {
		note := fmt.Sprintf("%s per transfer, client to server, loopback", bytes(float64(cfg.BulkBytes)))
		charts["bulk.svg"] = barChart("Bulk transfer (higher is better)", note, cats, []Series{one, eight})
	}
	for name, svg := range scaleCharts(cfg, res) {
		charts[name] = svg
	}
	return charts
}

// recoveryBar is one recovery result as a bar: its time, or the whole wait when it never
// recovered, or nothing when it was not run.
func recoveryBar(cfg Config, r *RecoveryResult) Bar {
	switch {
	case r == nil || r.Err != "":
		return Bar{0, "n/a"}
	case r.OK:
		return Bar{r.Served.Seconds(), dur(r.Served)}
	default:
		return Bar{cfg.RecoveryWait.Seconds(), "not within " + dur(cfg.RecoveryWait)}
	}
}
