package quicpool

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A request's timer serves the next take that reuses the request, and expires at that take's own
// deadline: never with the expiry of the take before, even one that fired unread (the take was
// served as its timeout came). Go 1.23 and later drop such an expiry on Stop by themselves; a
// program built with asynctimerchan=1 keeps it in the channel, so the test runs again in a child
// process with that setting.
func TestSpareRequestTimerCarriesNoExpiry(t *testing.T) {
	p := &Pool{requests: make(spares[*request], spareRequests)}
	first := p.newRequest()
	first.arm(timeoutBound(time.Millisecond))
	after := time.NewTimer(2 * time.Millisecond)
	<-after.C // first's deadline has passed: its expiry is there, unread
	timer := first.timer
	p.recycle(first)

	next := p.newRequest()
	require.Same(t, first, next, "the recycled request serves the next take")
	b := timeoutBound(20 * time.Millisecond)
	expired := next.arm(b)
	defer next.disarm()
	require.Same(t, timer, next.timer, "with its timer")
	guard := time.NewTimer(5 * time.Second)
	defer guard.Stop()
	select {
	case at := <-expired:
		require.False(t, at.Before(b.deadline.Add(-time.Millisecond)),
			"the next take's timer expired at %v, before its deadline %v: the expiry of the take before", at, b.deadline)
	case <-guard.C:
		t.Fatal("the next take's timer never expired")
	}

	if os.Getenv("GODEBUG") == "asynctimerchan=1" {
		return // the child
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSpareRequestTimerCarriesNoExpiry$", "-test.count=1")
	cmd.Env = append(os.Environ(), "GODEBUG=asynctimerchan=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "with asynctimerchan=1:\n%s", out)
}
