package quicpool

import (
	"math"
	"math/rand/v2"
	"time"
)

// RestartPolicy is how a pool retries what failed: a client shard whose connection died or could
// not be dialed, a server pool that could not listen. It follows OTP: a backoff between retries,
// and an intensity limit for retries that come too often.
//
// The delay before retry n (1, 2, ...) of one connection is InitialBackoff * Multiplier^(n-1),
// capped at MaxBackoff, then spread by Jitter. A connection that stayed up for HealthyAfter
// starts again at retry 1. A connection restarted more than MaxRestarts times within Window, or
// whose failure retrying cannot fix (a certificate that does not verify, an ALPN the server does
// not speak), is retried at MaxBackoff, and while no connection is up calls fail at once with
// ErrUnavailable wrapping the failure instead of waiting out their timeouts; retries go on, so
// that a server that comes back hours later is still picked up. The limit counts each
// connection's restarts on their own, so a pool of many connections escalates no sooner than a
// pool of one. A server pool that cannot listen retries with the backoff alone (InitialBackoff,
// Multiplier, MaxBackoff, Jitter), starting again at retry 1 once it listens: the intensity
// limit and HealthyAfter apply to a client's connections only.
//
// The zero value is ready to use: every zero field takes the default in brackets. A negative
// duration, a Multiplier below 1 or infinite, a Jitter above 1, a NaN, or a MaxBackoff below
// InitialBackoff is invalid: WithRestartPolicy reports it as ErrInvalidConfig.
type RestartPolicy struct {
	// InitialBackoff is the delay before the first retry [100ms].
	InitialBackoff time.Duration
	// MaxBackoff caps the delay [5s].
	MaxBackoff time.Duration
	// Multiplier grows the delay from one retry to the next [2]; at least 1.
	Multiplier float64
	// Jitter is the fraction of each delay that is randomised, so that many pools restarted at
	// once do not retry in step [0.2]; at most 1. A negative value disables it.
	Jitter float64
	// MaxRestarts is the number of restarts of one connection allowed within Window before it
	// escalates [10]. A negative value disables the limit.
	MaxRestarts int
	// Window is the period MaxRestarts is counted over [1m].
	Window time.Duration
	// HealthyAfter is how long a connection must stay up for its backoff to start over [10s].
	HealthyAfter time.Duration
}

// DefaultRestartPolicy is the policy a pool uses unless WithRestartPolicy says otherwise: first
// retry after 100ms, doubling to 5s, 20% jitter, escalation after 10 restarts of a connection in
// a minute. Suits a tunnel: fast to heal after a blip, gentle on a server that is down.
var DefaultRestartPolicy = RestartPolicy{}.withDefaults()

func (p RestartPolicy) withDefaults() RestartPolicy {
	if p.InitialBackoff == 0 {
		p.InitialBackoff = 100 * time.Millisecond
	}
	if p.MaxBackoff == 0 {
		p.MaxBackoff = max(5*time.Second, p.InitialBackoff)
	}
	if p.Multiplier == 0 {
		p.Multiplier = 2
	}
	if p.Jitter == 0 {
		p.Jitter = 0.2
	}
	p.Jitter = max(p.Jitter, 0)
	if p.MaxRestarts == 0 {
		p.MaxRestarts = 10
	}
	if p.Window == 0 {
		p.Window = time.Minute
	}
	if p.HealthyAfter == 0 {
		p.HealthyAfter = 10 * time.Second
	}
	return p
}

// validate reports a field no policy can work with.
func (p RestartPolicy) validate() error {
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"InitialBackoff", p.InitialBackoff}, {"MaxBackoff", p.MaxBackoff}, {"Window", p.Window}, {"HealthyAfter", p.HealthyAfter}} {
		if f.d < 0 {
			return invalid("RestartPolicy.%s %v is negative", f.name, f.d)
		}
	}
	d := p.withDefaults()
	switch {
	case !(d.Multiplier >= 1) || math.IsInf(d.Multiplier, 1): // NaN fails every comparison
		return invalid("RestartPolicy.Multiplier %v (want >= 1, or 0 for the default)", p.Multiplier)
	case !(d.Jitter <= 1):
		return invalid("RestartPolicy.Jitter %v (want <= 1)", p.Jitter)
	case d.MaxBackoff < d.InitialBackoff:
		return invalid("RestartPolicy.MaxBackoff %v is below InitialBackoff %v", d.MaxBackoff, d.InitialBackoff)
	}
	return nil
}

// Backoff returns the delay before retry number attempt (1 for the first retry), jitter included.
// It is never above MaxBackoff: at the ceiling, jitter only shortens the delay.
func (p RestartPolicy) Backoff(attempt int) time.Duration {
	p = p.withDefaults()
	d := p.delay(attempt)
	if j := min(p.Jitter, 1); j > 0 {
		d *= 1 - j + 2*j*rand.Float64()
	}
	if d >= float64(p.MaxBackoff) { // compared as floats: near math.MaxInt64 the conversion overflows
		return p.MaxBackoff
	}
	return time.Duration(d)
}

// delay is the backoff before retry attempt without jitter.
func (p RestartPolicy) delay(attempt int) float64 {
	d := float64(p.InitialBackoff)
	for i := 1; i < attempt && d < float64(p.MaxBackoff); i++ {
		d *= max(p.Multiplier, 1)
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
