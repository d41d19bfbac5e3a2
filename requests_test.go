package quicpool

import (
	"context"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quicpool/quicpool/internal/core"
	"github.com/quicpool/quicpool/messages"
	"github.com/stretchr/testify/require"
)

// A take's request serves the next take once its answer came; one whose caller gave up before
// its answer is never reused: its channel holds Abandon's mark, and the coordinator may still
// hold it and answer it later. The coordinator here is a stand-in that hands over what it
// receives.
func TestSpareRequestOnlyOnceAnswered(t *testing.T) {
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	require.NoError(t, err)
	received := make(chan *core.AdmittedGet, 4)
	coordinator := engine.SpawnFunc(func(c *actor.Context) {
		if m, ok := c.Message().(*core.AdmittedGet); ok {
			received <- m
		}
	}, "coordinator")
	defer func() { <-engine.Poison(coordinator).Done() }()
	p := &Pool{
		cfg:         &core.Config{Admission: make(chan struct{}, 4), Stopped: make(chan struct{})},
		engine:      engine,
		coordinator: coordinator,
		requests:    make(spares[*request], spareRequests),
		done:        make(chan struct{}),
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
	next := func(what string) *core.AdmittedGet {
		select {
		case m := <-received:
			<-p.cfg.Admission // as the coordinator does
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
