package actors

import (
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/stretchr/testify/require"
)

// A draining connection with no stream in use is done once it has been quiet for its quiet
// period: stream data moved, or a look at which its peer was silent, starts the period over.
func TestDrainWatchCountsOnlyQuietWhileThePeerAnswers(t *testing.T) {
	const quiet = 3 * time.Second
	start := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return start.Add(d) }
	carried := func(n uint64) quic.ConnectionStats {
		return quic.ConnectionStats{BytesSent: n / 2, BytesReceived: n - n/2}
	}

	d := newDrainWatch(nil, quiet, carried(10_000), start)
	require.False(t, d.done(carried(10_100), false, at(time.Second)), "keep-alives alone: quiet, not yet long enough")
	require.True(t, d.done(carried(10_200), false, at(quiet)), "quiet for the whole period")

	d = newDrainWatch(nil, quiet, carried(0), start)
	require.False(t, d.done(carried(0), true, at(2*time.Second)), "the peer silent: not quiet")
	require.False(t, d.done(carried(0), false, at(4*time.Second)), "quiet only since the peer was last silent")
	require.True(t, d.done(carried(0), false, at(5*time.Second)))

	d = newDrainWatch(nil, quiet, carried(0), start)
	require.False(t, d.done(carried(keepAliveBytes+1), false, at(2*time.Second)), "stream data moved")
	require.False(t, d.done(carried(keepAliveBytes+1), false, at(4*time.Second)))
	require.True(t, d.done(carried(keepAliveBytes+1), false, at(5*time.Second)))
}
