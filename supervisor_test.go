package quicpool

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestBackoffArithmetic(t *testing.T) {
	noJitter := RestartPolicy{Jitter: -1}
	cases := []struct {
		name    string
		policy  RestartPolicy
		attempt int
		want    time.Duration
	}{
		{"first retry", noJitter, 1, 100 * time.Millisecond},
		{"doubles", noJitter, 2, 200 * time.Millisecond},
		{"doubles again", noJitter, 4, 800 * time.Millisecond},
		{"capped", noJitter, 7, 5 * time.Second},
		{"stays capped", noJitter, 1000, 5 * time.Second},
		{"attempt 0 counts as 1", noJitter, 0, 100 * time.Millisecond},
		{"custom", RestartPolicy{InitialBackoff: time.Second, MaxBackoff: 10 * time.Second, Multiplier: 3, Jitter: -1}, 3, 9 * time.Second},
		{"max defaults to at least initial", RestartPolicy{InitialBackoff: 8 * time.Second, Jitter: -1}, 3, 8 * time.Second},
		{"longest initial", RestartPolicy{InitialBackoff: math.MaxInt64, Jitter: -1}, 1, math.MaxInt64},
		{"longest max, reached", RestartPolicy{MaxBackoff: math.MaxInt64, Multiplier: 1e6, Jitter: -1}, 10, math.MaxInt64},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, c.policy.Backoff(c.attempt))
		})
	}
}

func TestBackoffJitter(t *testing.T) {
	p := RestartPolicy{Jitter: 0.5}
	seen := map[time.Duration]bool{}
	for range 200 {
		d := p.Backoff(3) // 400ms +-50%
		assert.GreaterOrEqual(t, d, 200*time.Millisecond)
		assert.LessOrEqual(t, d, 600*time.Millisecond)
		seen[d] = true
	}
	assert.Greater(t, len(seen), 100, "jitter spreads the delays")
	d := RestartPolicy{}.Backoff(1) // default 20%
	assert.InDelta(t, float64(100*time.Millisecond), float64(d), float64(20*time.Millisecond))
	for range 200 { // at the ceiling jitter only shortens: a dead server is tried at least every MaxBackoff
		d := RestartPolicy{}.Backoff(100)
		assert.LessOrEqual(t, d, 5*time.Second)
		assert.GreaterOrEqual(t, d, 4*time.Second)
	}
	for range 200 { // jitter at the longest ceiling never wraps around to a negative delay
		d := RestartPolicy{MaxBackoff: math.MaxInt64, InitialBackoff: math.MaxInt64 / 2, Jitter: 1}.Backoff(2)
		assert.GreaterOrEqual(t, d, time.Duration(0))
	}
}

func TestIntensityArithmetic(t *testing.T) {
	now := time.Now()
	ago := func(ds ...time.Duration) []time.Time {
		var ts []time.Time
		for _, d := range ds {
			ts = append(ts, now.Add(-d))
		}
		return ts
	}
	three := RestartPolicy{MaxRestarts: 3, Window: 10 * time.Second}
	cases := []struct {
		name     string
		policy   RestartPolicy
		restarts []time.Time
		want     bool
	}{
		{"none", three, nil, false},
		{"at the limit", three, ago(1*time.Second, 2*time.Second, 3*time.Second), false},
		{"over the limit", three, ago(1*time.Second, 2*time.Second, 3*time.Second, 4*time.Second), true},
		{"old ones fall out of the window", three, ago(1*time.Second, 2*time.Second, 3*time.Second, 10*time.Second), false},
		{"default: 10 per minute", RestartPolicy{}, ago(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10), true},
		{"default at 10", RestartPolicy{}, ago(0, 1, 2, 3, 4, 5, 6, 7, 8, 9), false},
		{"disabled", RestartPolicy{MaxRestarts: -1}, ago(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, c.policy.Exceeded(c.restarts, now))
		})
	}
	assert.True(t, RestartPolicy{}.Healthy(10*time.Second))
	assert.False(t, RestartPolicy{}.Healthy(9*time.Second))
	assert.Equal(t, 5*time.Second, RestartPolicy{}.Ceiling())
}
