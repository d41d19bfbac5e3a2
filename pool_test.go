package quicpool_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRoundTrip(t *testing.T) {
	server := startServer(t, 8)
	client := startClient(t, 4, 8, server.Addr())
	require.NoError(t, server.WaitReady(waitCtx(t), 4))

	payload := bytes.Repeat([]byte("quicpool"), 128) // 1 KiB
	sc, cc := tunnel(t, server, client, payload)
	require.NoError(t, sc.Close())
	require.NoError(t, cc.Close())
}
