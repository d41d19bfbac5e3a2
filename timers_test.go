package quicpool

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A call's timer is kept for the next call, and the next call's timer expires at its own
// deadline: never with the expiry of the call before, even one that fired unread (the call was
// served as its timeout came).
func TestSpareTimerCarriesNoExpiry(t *testing.T) {
	p := &Pool{timers: make(spares[*time.Timer], spareTimers)}
	first := p.timeoutBound(time.Millisecond)
	after := time.NewTimer(2 * time.Millisecond)
	<-after.C // first's deadline has passed: its expiry is there, unread
	p.release(first)

	next := p.timeoutBound(20 * time.Millisecond)
	defer p.release(next)
	require.Same(t, first.timer, next.timer, "the released timer serves the next call")
	guard := time.NewTimer(5 * time.Second)
	defer guard.Stop()
	select {
	case at := <-next.expired:
		require.False(t, at.Before(next.deadline.Add(-time.Millisecond)),
			"the next call's timer expired at %v, before its deadline %v: the expiry of the call before", at, next.deadline)
	case <-guard.C:
		t.Fatal("the next call's timer never expired")
	}
}
