package quicpool_test

import (
	"testing"
	"time"

	"github.com/quicpool/quicpool"
	"github.com/quicpool/quicpool/messages"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Stats after known traffic: every served take is in the wait histogram, streams in use are
// counted per connection until their caller closes them, a refusal is counted by reason, and a
// connection that comes back to a slot is a reconnect.
func TestStatsAfterKnownTraffic(t *testing.T) {
	server := startServer(t, 8, quicpool.WithName("edge-1"))
	client := startClient(t, 8, 8, server.Addr(), quicpool.WithName("edge-1-client"))

	const takes = 5
	var held []interface{ Close() error }
	for range takes {
		sc, cc := tunnel(t, server, client, []byte("ping"))
		held = append(held, sc, cc)
	}
	// Each take's replacement reaches the server after the take: wait for the five.
	s := waitFor(t, server, "the taken streams replaced", func(s messages.Stats) bool {
		return len(s.Conns) == 1 && s.Conns[0].Opened >= 8+takes
	})
	assert.Equal(t, "edge-1", s.Name)
	assert.Equal(t, "server", s.Side)
	assert.Equal(t, uint64(takes), s.Wait.Count, "every Accept is in the histogram")
	var inHistogram uint64
	for _, n := range s.Wait.Counts {
		inHistogram += n
	}
	assert.Equal(t, s.Wait.Count, inHistogram)
	require.Len(t, s.Conns, 1)
	conn := s.Conns[0]
	assert.Equal(t, takes, conn.InUse, "taken and not closed")
	assert.NotZero(t, conn.PacketsReceived)
	assert.NotZero(t, conn.BytesSent)
	assert.NotZero(t, conn.LatestRTT)
	assert.WithinDuration(t, time.Now().Add(-conn.Up), conn.Since, time.Second)

	c := client.Stats()
	assert.Equal(t, "client", c.Side)
	assert.Equal(t, uint64(takes), c.Wait.Count)
	inUse := 0
	for _, cs := range c.Conns {
		inUse += cs.InUse
	}
	assert.Equal(t, takes, inUse)

	for _, h := range held {
		require.NoError(t, h.Close())
	}
	waitFor(t, server, "streams in use released", func(s messages.Stats) bool {
		return len(s.Conns) == 1 && s.Conns[0].InUse == 0
	})

	// One refusal: an address the server does not allow.
	strict := startServer(t, 8, quicpool.WithAllowedClients("127.0.0.1"))
	stranger := quicpool.NewClientPool(1, 1, 100*time.Millisecond, time.Second, 10*time.Second,
		"1", "localhost", quicpool.StaticAddr(strict.Addr()), quicpool.WithLocalAddr("127.0.0.2:0"))
	go stranger.ClientManager()
	t.Cleanup(stranger.Close)
	r := waitFor(t, strict, "a refusal", func(s messages.Stats) bool { return s.Refused > 0 })
	assert.NotZero(t, r.Refusals.NotAllowed)
	assert.Equal(t, r.Refused, r.Refusals.NotAllowed+r.Refusals.Moved+r.Refusals.Certificate+r.Refusals.Full)
	assert.Zero(t, r.Refusals.Moved)

	// One forced reconnect: the client's connection is closed under it; it redials into the
	// same slot.
	forceReconnect(t, server, client)
}

// requireAccounted checks that every stream s's pool opened is accounted for: handed out,
// discarded, lost with its connection, or still there.
func requireAccounted(t *testing.T, s messages.Stats, when string) {
	t.Helper()
	control := 0
	if s.Control {
		control = 1
	}
	require.Equal(t, s.Opened, s.HandedOut+s.Discarded+s.Lost+uint64(s.Idle+s.Withheld+s.PeerClosed+control),
		"%s, %s: %+v", s.Side, when, s)
}

// Every stream a pool opened is accounted for, on both sides, while it serves, after its
// connection died (its idle streams are counted in Lost) and after Close.
func TestEveryOpenedStreamIsAccountedFor(t *testing.T) {
	server := startServer(t, 8)
	client := startClient(t, 8, 8, server.Addr())
	tunnel(t, server, client, kib)
	pools := []*quicpool.Pool{server, client}
	for _, p := range pools {
		requireAccounted(t, p.Stats(), "serving")
	}

	forceReconnect(t, server, client)
	waitFor(t, server, "the server to purge the connection that died", func(s messages.Stats) bool { return s.Lost > 0 })
	for _, p := range pools {
		s := p.Stats()
		require.Positive(t, s.Lost, "%s: the idle streams of the connection that died", s.Side)
		requireAccounted(t, s, "after a reconnect")
	}

	client.Close()
	server.Close()
	for _, p := range pools {
		requireAccounted(t, p.Stats(), "closed")
	}
}
