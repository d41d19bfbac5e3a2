package quicpool

import (
	"math/rand/v2"
	"time"
)

// RestartPolicy is how a pool retries what failed: a client shard whose connection died or
// could not be dialed, a server pool that could not listen. The delay before retry n (1, 2, ...)
// is InitialBackoff * Multiplier^(n-1), capped at MaxBackoff, then spread by Jitter. A shard that
// reports a healthy connection starts again at retry 1.
//
// The zero value is ready to use: every zero field takes the default in brackets.
type RestartPolicy struct {
	// InitialBackoff is the delay before the first retry [100ms].
	InitialBackoff time.Duration
	// MaxBackoff caps the delay [5s]; retries go on at this pace for as long as it takes.
	MaxBackoff time.Duration
	// Multiplier grows the delay from one retry to the next [2]. Values below 1 count as 1.
	Multiplier float64
	// Jitter is the fraction of each delay that is randomised, so that many pools restarted at
	// once do not retry in step [0.2]. A negative value disables it.
	Jitter float64
}

// DefaultRestartPolicy is the policy a pool uses unless WithRestartPolicy says otherwise: first
// retry after 100ms, doubling up to 5s, with 20% jitter. Suits a tunnel: fast to heal after a
// blip, gentle on a server that is down.
var DefaultRestartPolicy = RestartPolicy{}

func (p RestartPolicy) withDefaults() RestartPolicy {
	if p.InitialBackoff <= 0 {
		p.InitialBackoff = 100 * time.Millisecond
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = 5 * time.Second
	}
	if p.MaxBackoff < p.InitialBackoff {
		p.MaxBackoff = p.InitialBackoff
	}
	if p.Multiplier == 0 {
		p.Multiplier = 2
	}
	p.Multiplier = max(p.Multiplier, 1)
	if p.Jitter == 0 {
		p.Jitter = 0.2
	}
	p.Jitter = min(max(p.Jitter, 0), 1)
	return p
}

// Backoff returns the delay before retry number attempt (1 for the first retry).
func (p RestartPolicy) Backoff(attempt int) time.Duration {
	p = p.withDefaults()
	d := float64(p.InitialBackoff)
	for i := 1; i < attempt && d < float64(p.MaxBackoff); i++ {
		d *= p.Multiplier
	}
	d = min(d, float64(p.MaxBackoff))
	if p.Jitter > 0 {
		d *= 1 - p.Jitter + 2*p.Jitter*rand.Float64()
	}
	return time.Duration(d)
}
