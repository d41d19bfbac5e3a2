package quicpool_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/quicpool/quicpool"
	"github.com/quicpool/quicpool/messages"
	"github.com/stretchr/testify/require"
)

// tunnelOp is one tunnel operation bounded by timeout: taker takes any idle stream, byID takes
// the same stream by its ID (either pool may be the server), and 1 KiB goes each way.
func tunnelOp(taker, byID *quicpool.Pool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	id, sc, err := taker.IncomingGet(timeout)
	if err != nil {
		return fmt.Errorf("taking any stream: %w", err)
	}
	defer sc.Close()
	cc, err := byID.OutgoingGet(id, time.Until(deadline))
	if err != nil {
		return fmt.Errorf("taking it by ID: %w", err)
	}
	defer cc.Close()
	_ = sc.SetDeadline(deadline)
	_ = cc.SetDeadline(deadline)
	for _, dir := range [][2]net.Conn{{cc, sc}, {sc, cc}} {
		if _, err := dir[0].Write(kib); err != nil {
			return err
		}
		if _, err := io.ReadFull(dir[1], make([]byte, len(kib))); err != nil {
			return err
		}
	}
	return nil
}

// startBulk keeps a tunnel busy with a bulk transfer, client to server, until the test ends or
// its connection dies, and returns once bytes flow.
func startBulk(t *testing.T, server, client *quicpool.Pool) {
	t.Helper()
	id, sc, err := server.IncomingGet(5 * time.Second)
	require.NoError(t, err)
	cc, err := client.OutgoingGet(id, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { sc.Close(); cc.Close() })
	flowing := make(chan struct{})
	go func() {
		chunk := make([]byte, 64<<10)
		for {
			if _, err := cc.Write(chunk); err != nil {
				return
			}
		}
	}()
	go func() {
		buf := make([]byte, 64<<10)
		once := false
		for {
			if _, err := sc.Read(buf); err != nil {
				return
			}
			if !once {
				once = true
				close(flowing)
			}
		}
	}()
	select {
	case <-flowing:
	case <-waitCtx(t).Done():
		t.Fatal("the bulk transfer did not start")
	}
}

// A path that goes dark for 5s, 18s or 45s while a bulk transfer runs: during the cut the client
// notices the silence (its connection is suspect and Err says so), no operation outlives its own
// timeout, and after the path returns the pool serves within a second for cuts that end within
// the 20s of fast redials (a standby connection, dialed every 500ms during the cut, takes over
// from the one whose retransmissions have backed off; 18s leaves room for the last operation of
// the cut to end late), and within the restart policy's ceiling plus a second for longer ones
// (the old connection has timed out; dials follow the backoff).
func TestOutageRecovery(t *testing.T) {
	for _, c := range []struct {
		cut, bound time.Duration
	}{
		{5 * time.Second, time.Second},
		{18 * time.Second, time.Second},
		{45 * time.Second, quicpool.DefaultRestartPolicy.MaxBackoff + time.Second},
	} {
		t.Run(c.cut.String(), func(t *testing.T) {
			t.Parallel()
			server := startServer(t, 8) // one connection slot: the standby must replace the silent one
			relay := newRelay(t, server.Addr())
			client, err := quicpool.NewClient(relay.Addr(), quicpool.WithTLSConfig(&tls.Config{InsecureSkipVerify: true}),
				quicpool.WithCapacity(4, 8))
			require.NoError(t, err)
			defer client.Close()
			require.NoError(t, client.WaitReady(waitCtx(t), 4))
			require.NoError(t, server.WaitReady(waitCtx(t), 4))
			startBulk(t, server, client)

			const opTimeout, slack = time.Second, 500 * time.Millisecond
			op := func(phase string) error {
				start := time.Now()
				err := tunnelOp(server, client, opTimeout)
				require.Less(t, time.Since(start), opTimeout+slack, "an op %s outlived its timeout: %v", phase, err)
				return err
			}

			relay.Blackhole(true)
			cutAt := time.Now()
			s := waitFor(t, client, "the client to notice the silence", func(s messages.Stats) bool {
				return len(s.Conns) > 0 && s.Conns[0].Suspect
			})
			t.Logf("suspect %v into the cut", time.Since(cutAt).Round(time.Millisecond))
			var silent *quicpool.SilentError
			require.ErrorAs(t, s.Err, &silent, "Err says why the pool cannot serve")
			for time.Since(cutAt) < c.cut {
				require.Error(t, op("during the cut"))
			}
			relay.Blackhole(false)
			restored := time.Now()

			var last error
			for time.Since(restored) < c.bound+10*time.Second {
				if last = op("after the restore"); last == nil {
					break
				}
			}
			require.NoError(t, last, "the pool never served again")
			served := time.Since(restored)
			t.Logf("cut %v: served %v after the restore", c.cut, served.Round(time.Millisecond))
			require.Less(t, served, c.bound)
			require.NoError(t, client.Err(), "Err clears once a connection answers")
		})
	}
}
