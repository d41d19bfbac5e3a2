package actors

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool/internal/core"
	"github.com/stretchr/testify/require"
)

var errNoHost = errors.New("no such host")

// supTest drives a real client supervisor whose coordinator is a recorder.
type supTest struct {
	t        *testing.T
	engine   *actor.Engine
	cfg      *core.Config
	pid      *actor.PID
	coord    chan any      // what the supervisor (and its shards) sent the coordinator
	resolves chan struct{} // one value per Resolve call
	resolved atomic.Int64  // Resolve calls
}

// startSupervisor spawns a client supervisor with shards slots whose dials call resolve, under
// policy. It is stopped when the test ends, and must then close SupervisorStopped.
func startSupervisor(t *testing.T, shards int, policy testPolicy, resolve func() (string, error), tune ...func(*runtime)) *supTest {
	t.Helper()
	engine := newEngine(t)
	cfg := testConfig(t, true)
	cfg.Shards, cfg.Policy = shards, policy
	s := &supTest{t: t, engine: engine, cfg: cfg, resolves: make(chan struct{}, 4096)}
	cfg.Resolve = func() (string, error) {
		s.resolved.Add(1)
		select {
		case s.resolves <- struct{}{}:
		default:
		}
		return resolve()
	}
	// The tests send dialOthers themselves, and end the other slots' first dials themselves.
	rt := newRuntime(cfg)
	rt.othersWait, rt.dialGap = time.Hour, time.Hour
	for _, f := range tune {
		f(rt)
	}
	s.coord = recordCoordinator(t, engine, rt)
	rt.supervisor = rt.spawn(engine.Spawn, newSupervisor(rt), "supervisor", smallInbox)
	s.pid = rt.supervisor
	t.Cleanup(func() {
		waitDone(t, engine.Poison(rt.supervisor), "the supervisor to stop")
		require.True(t, core.IsClosed(cfg.SupervisorStopped), "a stopped supervisor closes SupervisorStopped")
	})
	return s
}

// failing is a Resolve that fails at once.
func failing() (string, error) { return "", errNoHost }

// nextShardDown returns the next message the coordinator got, which must be a shardDown.
func (s *supTest) nextShardDown() shardDown {
	s.t.Helper()
	m := recv(s.t, s.coord, "a shardDown")
	sd, ok := m.(shardDown)
	require.True(s.t, ok, "the coordinator got %T, want shardDown", m)
	return sd
}

// shardPID is the PID of the shard incarnation generation of slot, or nil if it is not running.
func (s *supTest) shardPID(slot, generation int) *actor.PID {
	return s.engine.Registry.GetPID("quicpool", "client"+strconv.Itoa(slot)+"."+strconv.Itoa(generation)+"."+s.cfg.Name)
}

// slotOf reads the slot from a client shard's PID: quicpool/client<slot>.<generation>.<pool>.
func slotOf(t *testing.T, pid *actor.PID) int {
	t.Helper()
	rest, ok := strings.CutPrefix(pid.ID, "quicpool/client")
	require.True(t, ok, "not a client shard: %s", pid.ID)
	slot, err := strconv.Atoi(rest[:strings.IndexByte(rest, '.')])
	require.NoError(t, err, pid.ID)
	return slot
}

// Every failed dial makes the supervisor tell the coordinator shardDown with the error, and
// restart the slot with a fresh shard incarnation that dials again; every slot restarts.
func TestSupervisorRestartsEverySlotAfterFailedDials(t *testing.T) {
	s := startSupervisor(t, 3, testPolicy{backoff: 5 * time.Millisecond, ceiling: 5 * time.Millisecond}, failing)
	s.engine.Send(s.pid, core.Start{})
	failures := map[int]int{}
	seen := map[string]bool{}
	deadline := time.Now().Add(bound)
	for failures[0] < 2 || failures[1] < 2 || failures[2] < 2 {
		require.True(t, time.Now().Before(deadline), "not every slot restarted within %v: failures by slot %v", bound, failures)
		sd := s.nextShardDown()
		require.ErrorIs(t, sd.err, errNoHost)
		require.False(t, sd.failFast, "a temporary failure within the policy does not fail calls")
		require.False(t, seen[sd.shard.ID], "one incarnation reported down twice: %s", sd.shard.ID)
		seen[sd.shard.ID] = true
		failures[slotOf(t, sd.shard)]++
	}
	require.GreaterOrEqual(t, s.resolved.Load(), int64(6), "every failure was a dial")
}

// The restart intensity limit counts each slot on its own: failFast turns true exactly when one
// slot has failed more often than the limit, never after failures spread over slots, and stays
// true whichever slot fails next.
func TestSupervisorIntensityIsPerSlot(t *testing.T) {
	const limit = 3
	s := startSupervisor(t, 4, testPolicy{backoff: 5 * time.Millisecond, ceiling: 5 * time.Millisecond, limit: limit}, failing)
	s.engine.Send(s.pid, core.Start{})
	failures := map[int]int{}
	total := 0
	exceeded := false
	deadline := time.Now().Add(bound)
	for done := 0; done < 4; {
		require.True(t, time.Now().Before(deadline), "not every slot exceeded its limit within %v: failures by slot %v", bound, failures)
		sd := s.nextShardDown()
		slot := slotOf(t, sd.shard)
		failures[slot]++
		total++
		exceeded = exceeded || failures[slot] > limit
		require.Equal(t, exceeded, sd.failFast,
			"slot %d at its failure %d (%d failures in all, by slot %v)", slot, failures[slot], total, failures)
		if failures[slot] == limit+1 {
			done++
		}
	}
}

// While one slot is failing (a failure since it last connected was permanent or over the limit),
// calls fail at once, whichever slot failed last: neither another slot's ordinary failure nor
// its own turns that off. A slot stops failing when it connects.
func TestSupervisorFailFastLastsUntilTheFailingSlotConnects(t *testing.T) {
	s, dial := answeredSupervisor(t, 2, testPolicy{backoff: time.Hour, ceiling: time.Hour})
	s.engine.Send(s.pid, core.Start{})
	down := func(slot int, failFast bool, why string) {
		t.Helper()
		sd := s.nextShardDown()
		require.Equal(t, slot, slotOf(t, sd.shard), why)
		require.Equal(t, failFast, sd.failFast, why)
	}

	dial(0, 1, func() (string, error) { return "localhost", nil }) // no port: permanent
	down(0, true, "a permanent failure fails calls at once")

	one := dial(1, 2, nil) // slot 1's first dial starts once slot 0's has ended; it stays in it
	s.engine.Send(s.pid, connected{shard: one, slot: 1})
	s.engine.Send(s.pid, shardFailed{shard: one, slot: 1, err: errNoHost}) // its connection dies
	down(1, true, "slot 0 is still failing")

	s.engine.Send(s.pid, restartSlot{slot: 0}) // as its backoff ending would
	dial(0, 3, failing)
	down(0, true, "slot 0 has not connected since its permanent failure")

	s.engine.Send(s.pid, restartSlot{slot: 0})
	s.engine.Send(s.pid, connected{shard: dial(0, 4, nil), slot: 0})
	s.engine.Send(s.pid, restartSlot{slot: 1})
	dial(1, 5, failing)
	down(1, false, "slot 0 connected: no slot is failing")
}

// answeredSupervisor starts a client supervisor of slots slots, each incarnation making one dial
// attempt, whose dials wait for the test. dial(slot, generation, answer) waits until that
// incarnation asks the resolver and answers it: with answer's result, or, for a nil answer, not
// until the test ends (the incarnation stays in its dial). It returns the incarnation's PID.
func answeredSupervisor(t *testing.T, slots int, policy testPolicy) (*supTest, func(slot, generation int, answer func() (string, error)) *actor.PID) {
	answers := make(chan func() (string, error))
	done := make(chan struct{})
	s := startSupervisor(t, slots, policy, func() (string, error) {
		select {
		case answer := <-answers:
			return answer()
		case <-done:
			return failing()
		}
	}, func(rt *runtime) { rt.oneAttempt = true })
	t.Cleanup(func() { close(done) }) // before startSupervisor's cleanup stops the supervisor
	return s, func(slot, generation int, answer func() (string, error)) *actor.PID {
		t.Helper()
		for s.shardPID(slot, generation) == nil {
			recv(t, s.resolves, fmt.Sprintf("slot %d's dial", slot))
		}
		if answer == nil {
			answer = func() (string, error) { <-done; return failing() }
		}
		answers <- answer
		return s.shardPID(slot, generation)
	}
}

// Failures in a row count up the backoff's attempt; a connection that stayed up long enough to
// be healthy starts the count again.
func TestSupervisorResetsBackoffAfterAHealthyConnection(t *testing.T) {
	attempts := make(chan int, 16)
	s, dial := answeredSupervisor(t, 1, testPolicy{backoff: time.Millisecond, ceiling: time.Hour, healthy: time.Minute, attempts: attempts})
	s.engine.Send(s.pid, core.Start{})
	dial(0, 1, failing)
	require.Equal(t, 1, recv(t, attempts, "the first backoff"))
	dial(0, 2, failing)
	require.Equal(t, 2, recv(t, attempts, "the second backoff"), "failures in a row")

	third := dial(0, 3, nil)
	s.engine.Send(s.pid, connected{shard: third, slot: 0})
	s.engine.Send(s.pid, shardFailed{shard: third, slot: 0, err: errNoHost, upFor: time.Minute})
	require.Equal(t, 1, recv(t, attempts, "the backoff after a healthy connection"), "the count starts again")
}

// A panic in a shard's Receive becomes the shard's failure: the supervisor reports it to the
// coordinator and restarts the slot with a fresh incarnation.
func TestSupervisorHealsPanickingShard(t *testing.T) {
	release := make(chan struct{})
	s := startSupervisor(t, 1, testPolicy{backoff: 5 * time.Millisecond, ceiling: 5 * time.Millisecond},
		func() (string, error) { <-release; return "", errNoHost }) // the shard stays in its dial
	t.Cleanup(func() { close(release) })
	s.engine.Send(s.pid, core.Start{})
	recv(t, s.resolves, "the first dial")
	first := s.shardPID(0, 1)
	require.NotNil(t, first, "the first incarnation runs")

	s.engine.Send(first, dialed{conn: nil}) // up() dereferences the connection: a panic in Receive
	// The supervisor reports the failure; the shard, which marked itself up before it panicked,
	// may also report its own stop (no error) first.
	var sd shardDown
	for sd.err == nil {
		sd = s.nextShardDown()
		require.Equal(t, first.ID, sd.shard.ID, "only the panicking shard went down")
	}
	require.ErrorIs(t, sd.err, core.ErrPanic)

	for s.shardPID(0, 2) == nil { // the restarted incarnation is registered before it dials
		recv(t, s.resolves, "the restarted shard's dial")
	}
}

// Shutdown closes its reply once every shard has stopped, and no slot restarts afterwards, not
// even one whose restart was pending.
func TestSupervisorShutdownStopsShardsAndRestarts(t *testing.T) {
	var calls atomic.Int64
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	// The first dial fails (its slot's restart is then pending); later ones wait for release, and
	// fail once it is closed.
	s := startSupervisor(t, 2, testPolicy{backoff: 100 * time.Millisecond, ceiling: 100 * time.Millisecond},
		func() (string, error) {
			if calls.Add(1) > 1 {
				<-release
			}
			return "", errNoHost
		})
	s.engine.Send(s.pid, core.Start{})
	first := s.nextShardDown()
	require.ErrorIs(t, first.err, errNoHost)
	live := 1 - slotOf(t, first.shard)
	for s.shardPID(live, live+1) == nil || s.resolved.Load() < 2 {
		recv(t, s.resolves, "the live shard's dial")
	}

	reply := make(chan struct{})
	s.engine.Send(s.pid, core.Shutdown{Reply: reply})
	recv(t, reply, "the Shutdown reply")
	requireNoShards := func(when string) {
		t.Helper()
		for slot := range 2 {
			for generation := 1; generation <= 20; generation++ {
				require.Nil(t, s.shardPID(slot, generation), "shard %d.%d runs %s", slot, generation, when)
			}
		}
	}
	requireNoShards("when Shutdown is answered")

	// From now on every dial fails at once: a shard spawned after Shutdown would fail and be
	// reported to the coordinator. Those stopped by Shutdown end quietly.
	unblock()
	window := time.NewTimer(300 * time.Millisecond) // three times the restart delay
	defer window.Stop()
	select {
	case m := <-s.coord:
		t.Fatalf("the coordinator got %#v after Shutdown: a slot was restarted", m)
	case <-window.C:
	}
	requireNoShards("after Shutdown")
}

// A forged actor.Stopped is dropped by the sealed receiver: the supervisor does not stop
// its slots or close SupervisorStopped, and still starts dialing on Start.
func TestSupervisorIgnoresForgedStopped(t *testing.T) {
	s := startSupervisor(t, 1, testPolicy{backoff: 5 * time.Millisecond, ceiling: 5 * time.Millisecond}, failing)
	s.engine.Send(s.pid, actor.Stopped{})
	s.engine.Send(s.pid, core.Start{})
	recv(t, s.resolves, "a dial after the forged Stopped")
	require.ErrorIs(t, s.nextShardDown().err, errNoHost)
	require.False(t, core.IsClosed(s.cfg.SupervisorStopped), "a forged Stopped does not stop the supervisor")
}

// A client whose first connection is up dials the other slots only once the coordinator says
// they may (dialOthers: the first connection has filled the pool, or holds all it may).
func TestSupervisorDialsOthersOnceTheFirstConnectionFilled(t *testing.T) {
	s := firstConnected(t)
	s.barrier()
	require.Nil(t, s.shardPID(1, 2), "slot 1 waits for the first connection to fill")
	require.Nil(t, s.shardPID(2, 3), "slot 2 waits for the first connection to fill")
	s.engine.Send(s.pid, dialOthers{})
	s.barrier()
	require.NotNil(t, s.shardPID(1, 2), "slot 1 dials")
	require.Nil(t, s.shardPID(2, 3), "slot 2 waits for slot 1's handshake")
	s.engine.Send(s.pid, connected{shard: s.shardPID(1, 2), slot: 1})
	s.barrier()
	require.NotNil(t, s.shardPID(2, 3), "slot 2 dials once slot 1 connected")
}

// The other slots' first dials go one after another: the next starts when one fails, as when it
// connects, or after dialGap if it has not ended by then.
func TestSupervisorDialsTheOtherSlotsOneAfterAnother(t *testing.T) {
	t.Run("after a failure", func(t *testing.T) {
		s := firstConnected(t)
		s.engine.Send(s.pid, dialOthers{})
		s.barrier()
		require.NotNil(t, s.shardPID(1, 2), "slot 1 dials")
		require.Nil(t, s.shardPID(2, 3), "slot 2 waits for slot 1's handshake")
		s.engine.Send(s.pid, shardFailed{shard: s.shardPID(1, 2), slot: 1, err: errNoHost})
		s.barrier()
		require.NotNil(t, s.shardPID(2, 3), "slot 2 dials once slot 1's dial failed")
	})
	t.Run("after dialGap", func(t *testing.T) {
		s := firstConnected(t, func(rt *runtime) { rt.dialGap = 10 * time.Millisecond })
		s.engine.Send(s.pid, dialOthers{})
		recv(t, s.resolves, "slot 1's dial")
		recv(t, s.resolves, "slot 2's dial, while slot 1's has not ended")
		s.barrier()
		require.NotNil(t, s.shardPID(1, 2))
		require.NotNil(t, s.shardPID(2, 3))
	})
}

// If the coordinator never says the first connection filled the pool, the other slots dial
// othersWait after it came up.
func TestSupervisorDialsOthersAfterOthersWait(t *testing.T) {
	s := firstConnected(t, func(rt *runtime) { rt.othersWait = 10 * time.Millisecond })
	recv(t, s.resolves, "a second slot's dial")
	s.barrier()
	require.NotNil(t, s.shardPID(1, 2), "slot 1 dials")
}

// firstConnected starts a client supervisor of three slots whose dials wait until the test
// ends, and tells it, as slot 0's shard would, that slot 0 connected.
func firstConnected(t *testing.T, tune ...func(*runtime)) *supTest {
	release := make(chan struct{})
	s := startSupervisor(t, 3, testPolicy{backoff: time.Hour, ceiling: time.Hour}, func() (string, error) {
		<-release
		return failing()
	}, tune...)
	t.Cleanup(func() { close(release) }) // before startSupervisor's cleanup stops the supervisor
	s.engine.Send(s.pid, core.Start{})
	recv(t, s.resolves, "slot 0's dial")
	first := s.shardPID(0, 1)
	require.NotNil(t, first)
	s.engine.Send(s.pid, connected{shard: first, slot: 0})
	return s
}

// barrier returns once the supervisor has handled every message this goroutine sent it before.
func (s *supTest) barrier() {
	s.t.Helper()
	reply := make(chan struct{})
	s.engine.Send(s.pid, shardsStopped{reply: reply})
	recv(s.t, reply, "the supervisor's barrier")
}

// A client dials its first slot alone, and the others (one after another) if that first dial
// fails: the first connection's handshake does not share the CPU with the others'.
func TestSupervisorDialsOneSlotFirst(t *testing.T) {
	release := make(chan struct{})
	s := startSupervisor(t, 3, testPolicy{backoff: time.Hour, ceiling: time.Hour}, func() (string, error) {
		<-release
		return failing()
	})
	s.engine.Send(s.pid, core.Start{})
	recv(t, s.resolves, "slot 0's dial")
	require.NotNil(t, s.shardPID(0, 1), "slot 0 dials first")
	require.Nil(t, s.shardPID(1, 2), "slot 1 waits for slot 0's dial")
	require.Nil(t, s.shardPID(2, 2), "slot 2 waits for slot 0's dial")
	require.Nil(t, s.shardPID(1, 3))
	require.Nil(t, s.shardPID(2, 3))
	close(release)
	recv(t, s.resolves, "a second slot's dial")
	recv(t, s.resolves, "a third slot's dial")
	require.Equal(t, 0, slotOf(t, s.nextShardDown().shard), "slot 0 failed first")
}

// A connection whose stream credit the supervisor does not give within creditWait is refused in
// its handshake, and the refusal is reported to the supervisor like any other, so that it counts
// in Stats().Refusals.Full.
func TestCreditTimeoutIsARefusal(t *testing.T) {
	engine := newEngine(t)
	cfg := testConfig(t, false)
	rt := newRuntime(cfg)
	var sup chan any
	rt.supervisor, sup = spawnRecorder(t, engine, "supervisor."+cfg.Name) // never answers
	h := &creditHandout{rt: rt, engine: engine}
	info := &quic.ClientInfo{RemoteAddr: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 4242}}
	_, err := h.config(&quic.Config{}, info)
	require.ErrorIs(t, err, errCreditTimeout)
	require.IsType(t, creditAsk{}, recv(t, sup, "the credit ask"))
	r, ok := recv(t, sup, "the refusal").(refusal)
	require.True(t, ok, "the supervisor is told of the refusal")
	require.Equal(t, refusedFull, r.reason)
	require.ErrorIs(t, r.err, core.ErrPoolFull)
	require.Equal(t, "127.0.0.2:4242", r.addr)
}

// recentRefusals takes a refusal of an address first refused less than refusalRepeat ago for the
// same dial's, and forgets an address after refusalRepeat from its first refusal (however many
// repeats came meanwhile) or once refusalMemory others were refused since.
func TestRecentRefusals(t *testing.T) {
	var r recentRefusals
	now := time.Now()
	require.False(t, r.repeat("127.0.0.2:4000", now))
	require.True(t, r.repeat("127.0.0.2:4000", now.Add(time.Millisecond)), "the dial's second Initial")
	require.True(t, r.repeat("127.0.0.2:4000", now.Add(refusalRepeat-time.Millisecond)), "a retransmission")
	require.False(t, r.repeat("127.0.0.2:4000", now.Add(refusalRepeat)), "a new dial from the same port: repeats do not extend the window")
	require.False(t, r.repeat("127.0.0.2:4001", now), "another port: another dial")
	for i := range refusalMemory {
		require.False(t, r.repeat(fmt.Sprintf("127.0.0.3:%d", 5000+i), now))
	}
	require.False(t, r.repeat("127.0.0.2:4001", now), "forgotten after refusalMemory others")
}

// Only the refusals made for one Initial packet (not allowed at the listener, no stream credit in
// time) are taken for the same dial's when they repeat; the others are made once per connection,
// and two of them from one address are two connections.
func TestOnlyPerInitialRefusalsAreCountedOnce(t *testing.T) {
	s := startSupervisor(t, 1, testPolicy{}, failing)
	addr := "127.0.0.2:4000"
	s.engine.Send(s.pid, refusal{addr: addr, err: errNoHost, reason: refusedNotAllowed, perInitial: true})
	s.engine.Send(s.pid, refusal{addr: addr, err: errNoHost, reason: refusedNotAllowed, perInitial: true})
	s.engine.Send(s.pid, refusal{addr: addr, err: errNoHost, reason: refusedCertificate})
	s.engine.Send(s.pid, refusal{addr: addr, err: errNoHost, reason: refusedCertificate})
	s.engine.Send(s.pid, refusal{addr: "127.0.0.2:4001", err: errNoHost, reason: refusedMoved}) // the last
	var got []refusalReason
	for len(got) == 0 || got[len(got)-1] != refusedMoved {
		m, ok := recv(t, s.coord, "a connRefused").(connRefused)
		require.True(t, ok)
		got = append(got, m.reason)
	}
	require.Equal(t, []refusalReason{refusedNotAllowed, refusedCertificate, refusedCertificate, refusedMoved}, got)
}
