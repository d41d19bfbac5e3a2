package quicpool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quicpool/quicpool/internal/core"
	"github.com/quicpool/quicpool/messages"
	"github.com/stretchr/testify/require"
)

// A take's request serves the next take once its answer came; one whose caller gave up before
// its answer is never reused: its channel holds Abandon's mark, and the coordinator may still
// hold it and answer it later. The test stands in for the coordinator: it takes the requests
// off the channel the coordinator reads.
func TestSpareRequestOnlyOnceAnswered(t *testing.T) {
	received := make(chan *core.Take, 4)
	p := &Pool{
		cfg:      &core.Config{Takes: received, Stopped: make(chan struct{})},
		requests: make(spares[*request], spareRequests),
		done:     make(chan struct{}),
	}
	type answer struct {
		s   messages.Stream
		err error
	}
	take := func(ctx context.Context) chan answer {
		done := make(chan answer, 1)
		go func() {
			s, err := p.take(ctxBound(ctx), "", false)
			done <- answer{s, err}
		}()
		return done
	}
	next := func(what string) *core.Take {
		select {
		case m := <-received:
			return m
		case <-time.After(5 * time.Second):
			t.Fatalf("%s never reached the coordinator", what)
			return nil
		}
	}
	wait := func(done chan answer, what string) answer {
		select {
		case a := <-done:
			return a
		case <-time.After(5 * time.Second):
			t.Fatalf("%s never returned", what)
			return answer{}
		}
	}

	first := take(context.Background())
	answered := next("the first take")
	answered.Get.Reply <- messages.Stream{ID: "00000001"}
	require.Equal(t, "00000001", wait(first, "the first take").s.ID)

	ctx, giveUp := context.WithCancel(context.Background())
	second := take(ctx)
	require.Same(t, answered, next("the second take"), "the answered request serves the next take")
	giveUp()
	require.ErrorIs(t, wait(second, "the abandoned take").err, context.Canceled)

	third := take(context.Background())
	fresh := next("the third take")
	require.NotSame(t, answered, fresh, "the abandoned request serves no other take")
	require.Len(t, answered.Get.Reply, 1, "the abandoned request's channel holds Abandon's mark")
	fresh.Get.Reply <- messages.Stream{ID: "00000003"}
	require.Equal(t, "00000003", wait(third, "the third take").s.ID, "the third take gets its own answer")
}

// A take that finds maxQueuedGets requests waiting for the coordinator waits for room within its
// own bound: it times out without sending if none frees, and sends as soon as one does. The test
// stands in for a coordinator that is behind: it holds the channel of takes full, and answers
// Cause. It runs in a synctest bubble, so that the second take is known to wait before room
// frees.
func TestTakeWaitsForRoomWithinItsBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		takes := make(chan *core.Take, 2)
		cfg := &core.Config{Takes: takes, Mail: make(chan any, 1), MailClosed: make(chan struct{}), Stopped: make(chan struct{})}
		defer close(cfg.MailClosed)
		go func() {
			for {
				select {
				case m := <-cfg.Mail:
					if c, ok := m.(core.Cause); ok {
						c.Reply <- nil
					}
				case <-cfg.MailClosed:
					return
				}
			}
		}()
		p := &Pool{
			cfg:      cfg,
			requests: make(spares[*request], spareRequests),
			done:     make(chan struct{}),
			closed:   make(chan struct{}),
		}
		ahead := []*core.Take{{}, {}}
		for _, r := range ahead {
			takes <- r
		}

		start := time.Now()
		_, err := p.take(timeoutBound(100*time.Millisecond), "", false)
		require.ErrorIs(t, err, ErrTimeout, "no room: the take waits out its timeout")
		var netErr net.Error
		require.True(t, errors.As(err, &netErr) && netErr.Timeout())
		require.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)
		require.Len(t, takes, 2, "the take never reached the coordinator")

		done := make(chan error, 1)
		go func() {
			s, err := p.take(timeoutBound(5*time.Second), "", false)
			if err == nil && s.ID != "00000001" {
				err = fmt.Errorf("got stream %q", s.ID)
			}
			done <- err
		}()
		synctest.Wait() // the take waits for room
		require.Len(t, takes, 2, "no room yet")
		require.Same(t, ahead[0], <-takes, "room frees")
		synctest.Wait()
		require.Same(t, ahead[1], <-takes)
		r := <-takes
		require.NotContains(t, ahead, r, "the waiting take sent once room freed")
		r.Get.Reply <- messages.Stream{ID: "00000001"}
		require.NoError(t, <-done, "the waiting take is served")
	})
}

// A call with a bound of its own does not wait past it for room in a coordinator that is far
// behind: with the coordinator's mailbox full and nobody reading it, WaitReady returns at its
// context's deadline and a timed-out call's question for the cause gives up after causeWait.
func TestBoundedCallsDoNotWaitForAFullMailbox(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := &core.Config{Mail: make(chan any, 1), MailClosed: make(chan struct{}), Stopped: make(chan struct{})}
		cfg.Mail <- struct{}{} // the coordinator is behind
		p := &Pool{cfg: cfg, done: make(chan struct{}), closed: make(chan struct{})}

		start := time.Now()
		require.NoError(t, p.cause(), "no answer: no cause")
		require.Equal(t, causeWait, time.Since(start), "the question gives up after causeWait")

		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start = time.Now()
		err := p.WaitReady(ctx, 1)
		require.ErrorIs(t, err, ErrTimeout)
		require.Equal(t, time.Second+causeWait, time.Since(start), "WaitReady ends at its deadline (and asks for the cause)")
	})
}
