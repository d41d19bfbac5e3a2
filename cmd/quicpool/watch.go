package main

import (
	"fmt"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quicpool/quicpool"
	"github.com/quicpool/quicpool/messages"
)

// watch subscribes to the events the pool broadcasts on its engine (an engine of its own) and returns them on a
// channel; events that find the channel full are dropped (the commands also poll Stats). stop
// ends the subscription.
func watch(p *quicpool.Pool) (events <-chan messages.Event, stop func()) {
	ch := make(chan messages.Event, 256)
	engine := p.Engine()
	pid := engine.SpawnFunc(func(c *actor.Context) {
		if ev, ok := c.Message().(messages.Event); ok {
			select {
			case ch <- ev:
			default:
			}
		}
	}, "cli-events")
	engine.Subscribe(pid)
	return ch, func() {
		engine.Unsubscribe(pid)
		<-engine.Poison(pid).Done()
	}
}

// answering is the number of the pool's connections whose peer answers (not suspect).
func answering(st quicpool.Stats) int {
	n := 0
	for _, c := range st.Conns {
		if !c.Suspect {
			n++
		}
	}
	return n
}

// health is the part the two commands share of the one-line summary of a pool and its tunnels
// that -stats logs periodically: idle streams ready for a tunnel, tunnels, the round-trip time
// (the largest of the connections that answer: a silent one's is stale) and the bytes carried.
func health(idle int, st quicpool.Stats, t *tracker) []any {
	var rtt any = "none" // no connection answers
	var largest time.Duration
	for _, c := range st.Conns {
		if !c.Suspect {
			largest = max(largest, c.SmoothedRTT)
			rtt = largest.Round(10 * time.Microsecond)
		}
	}
	tunnels := t.snapshot()
	return []any{
		"idle_streams", idle,
		"tunnels_open", tunnels.open,
		"tunnels_total", tunnels.total,
		"rtt", rtt,
		"bytes_up", tunnels.up,
		"bytes_down", tunnels.down,
	}
}

// round is d rounded for a log line.
func round(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	default:
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
}
