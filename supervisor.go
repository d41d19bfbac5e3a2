package quicpool

import (
	"math/rand/v2"
	"time"
)

// RestartPolicy is how a pool retries what failed: a client shard whose connection died or could
// not be dialed, a server pool that could not listen. It follows OTP: a backoff between retries,
// and an intensity limit that escalates when retries come too often.
//
// The delay before retry n (1, 2, ...) is InitialBackoff * Multiplier^(n-1), capped at
// MaxBackoff, then spread by Jitter. A shard whose connection stayed up for HealthyAfter starts
// again at retry 1. More than MaxRestarts restarts within Window escalate: the pool reports the
// failure (Get calls fail at once with ErrUnavailable while no connection is up, the log says
// why) and keeps retrying at MaxBackoff, so that a server that comes back hours later is still
// picked up. A failure that retrying cannot fix (a certificate that does not verify, an ALPN the
// server does not speak) is retried at MaxBackoff from the start.
//
// The zero value is ready to use: every zero field takes the default in brackets.
type RestartPolicy struct {
	// InitialBackoff is the delay before the first retry [100ms].
	InitialBackoff time.Duration
	// MaxBackoff caps the delay [5s].
	MaxBackoff time.Duration
	// Multiplier grows the delay from one retry to the next [2]. Values below 1 count as 1.
	Multiplier float64
	// Jitter is the fraction of each delay that is randomised, so that many pools restarted at
	// once do not retry in step [0.2]. A negative value disables it; values above 1 count as 1.
	Jitter float64
	// MaxRestarts is the number of restarts allowed within Window before the pool escalates
	// [10]. A negative value disables the limit.
	MaxRestarts int
	// Window is the period MaxRestarts is counted over [1m].
	Window time.Duration
	// HealthyAfter is how long a connection must stay up for its shard's backoff to start over
	// [10s].
	HealthyAfter time.Duration
}

// DefaultRestartPolicy is the policy a pool uses unless WithRestartPolicy says otherwise: first
// retry after 100ms, doubling to 5s, 20% jitter, escalation after 10 restarts in a minute. Suits
// a tunnel: fast to heal after a blip, gentle on a server that is down.
var DefaultRestartPolicy = RestartPolicy{}.withDefaults()

func (p RestartPolicy) withDefaults() RestartPolicy {
	if p.InitialBackoff <= 0 {
		p.InitialBackoff = 100 * time.Millisecond
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = 5 * time.Second
	}
	p.MaxBackoff = max(p.MaxBackoff, p.InitialBackoff)
	if p.Multiplier == 0 {
		p.Multiplier = 2
	}
	p.Multiplier = max(p.Multiplier, 1)
	if p.Jitter == 0 {
		p.Jitter = 0.2
	}
	p.Jitter = min(max(p.Jitter, 0), 1)
	if p.MaxRestarts == 0 {
		p.MaxRestarts = 10
	}
	if p.Window <= 0 {
		p.Window = time.Minute
	}
	if p.HealthyAfter <= 0 {
		p.HealthyAfter = 10 * time.Second
	}
	return p
}

// Backoff returns the delay before retry number attempt (1 for the first retry), jitter included.
func (p RestartPolicy) Backoff(attempt int) time.Duration {
	p = p.withDefaults()
	d := p.delay(attempt)
	if p.Jitter > 0 {
		d *= 1 - p.Jitter + 2*p.Jitter*rand.Float64()
	}
	return time.Duration(d)
}

// delay is the backoff before retry attempt without jitter.
func (p RestartPolicy) delay(attempt int) float64 {
	d := float64(p.InitialBackoff)
	for i := 1; i < attempt && d < float64(p.MaxBackoff); i++ {
		d *= p.Multiplier
	}
	return min(d, float64(p.MaxBackoff))
}

// Ceiling returns MaxBackoff, the pace of retries after an escalation or a permanent failure.
func (p RestartPolicy) Ceiling() time.Duration { return p.withDefaults().MaxBackoff }

// Exceeded reports whether restarts, the times of past restarts, hold more than MaxRestarts
// within the Window that ends at now.
func (p RestartPolicy) Exceeded(restarts []time.Time, now time.Time) bool {
	p = p.withDefaults()
	if p.MaxRestarts < 0 {
		return false
	}
	n := 0
	for _, t := range restarts {
		if now.Sub(t) < p.Window {
			n++
		}
	}
	return n > p.MaxRestarts
}

// Healthy reports whether a connection that has been up for the given time resets its backoff.
func (p RestartPolicy) Healthy(up time.Duration) bool { return up >= p.withDefaults().HealthyAfter }
