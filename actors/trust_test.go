package actors

import (
	"fmt"
	"testing"
	"time"

	"github.com/quicpool/quicpool/internal/core"
	"github.com/stretchr/testify/require"
)

// An honest server that takes back a connection's idle streams now and then (a newcomer shrinks
// the connection's share) is never judged hostile, however long the connection lives with nothing
// taken from it; a server that closes as many streams as fast as they come is.
func TestTrustJudgesClosesWithinAWindow(t *testing.T) {
	const hold = 16
	start := time.Now()
	// cycles runs 200 rounds, every apart: the server closes 8 idle streams, then issues their 8
	// replacements. It returns the violation and the round it came in.
	cycles := func(tr *trust, every time.Duration) (int, error) {
		ids := 0
		handshake := func() {
			ids++
			require.NoError(t, tr.handshaken(fmt.Sprintf("%08x", ids), false))
		}
		for range hold {
			handshake()
		}
		for round := range 200 {
			now := start.Add(time.Duration(round) * every)
			for range 8 {
				if err := tr.peerClosed(hold, now); err != nil {
					return round, err
				}
			}
			for range 8 {
				handshake()
			}
		}
		return 200, nil
	}
	var honest trust
	_, err := cycles(&honest, 30*time.Second)
	require.NoError(t, err, "8 streams taken back every 30s for 100 minutes")

	var hostile trust
	round, err := cycles(&hostile, 20*time.Millisecond)
	require.ErrorIs(t, err, core.ErrViolation)
	require.Less(t, round, 10, "judged within a few rounds")
}
