package quicpool

import "time"

// SetStaleAfter shortens, for the tests of server slot replacement, how long a connection must
// be quiet before a reconnecting client from the same address may replace it. It returns a
// function that restores the default.
func SetStaleAfter(d time.Duration) (restore func()) {
	old := staleAfter
	staleAfter = d
	return func() { staleAfter = old }
}
