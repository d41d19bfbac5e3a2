package quicpool_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quicpool/quicpool"
	"github.com/quicpool/quicpool/messages"
	"github.com/stretchr/testify/require"
)

// requireServes checks that a pair of pools still hands out working streams.
func requireServes(t *testing.T, server, client *quicpool.Pool) {
	t.Helper()
	for range 3 {
		sc, cc := tunnel(t, server, client, kib)
		sc.Close()
		cc.Close()
	}
}

// closeQuickly closes the pools and checks that Close did not have to wait out a deadline and
// that nothing of them is left running.
func closeQuickly(t *testing.T, baseline int, pools ...*quicpool.Pool) {
	t.Helper()
	start := time.Now()
	for _, p := range pools {
		p.Close()
	}
	require.Less(t, time.Since(start), 2*time.Second, "Close returns without waiting out its 5s deadline")
	settleGoroutines(t, baseline)
}

// The mistakes an embedder can make with the request messages cost nothing: no actor blocks or
// panics, the answers that cannot be delivered are counted, forged lifecycle messages and foreign
// types are ignored, the pool keeps serving and closes at once.
func TestMalformedRequestsAreHarmless(t *testing.T) {
	baseline := runtime.NumGoroutine()
	server := startServer(t, 8)
	client := startClient(t, 4, 8, server.Addr())
	engine, coordinator := client.Engine(), client.Coordinator()

	closedReply := make(chan messages.Stream, 1)
	close(closedReply)
	shared := make(chan messages.Stats, 1)
	for _, m := range []any{
		messages.WaitReady{N: 1},                              // no reply channel: refused
		messages.State{Reply: shared},                         // three requests, one slot: one answer
		messages.State{Reply: shared},                         // dropped
		messages.State{Reply: shared},                         // dropped
		messages.Flush{},                                      // no reply wanted: flushes
		messages.Get{Reply: closedReply},                      // closed: the stream stays in the pool
		messages.Get{Reply: make(chan messages.Stream)},       // unbuffered: refused
		messages.Get{Reply: make(chan messages.Stream, 2)},    // two slots break Abandon: refused
		messages.WaitReady{N: 1, Reply: make(chan error)},     // unbuffered: refused
		actor.Stopped{}, actor.Started{}, actor.Initialized{}, // forged lifecycle
		"junk", 42, struct{}{}, messages.Stream{}, messages.Stats{}, messages.Event{},
	} {
		engine.Send(coordinator, m)
	}
	s := waitFor(t, client, "the bad requests to be counted", func(s messages.Stats) bool { return s.Dropped >= 7 })
	require.Equal(t, uint64(7), s.Dropped)
	require.False(t, s.Closed, "a forged Stopped does not stop the pool")
	require.Len(t, shared, 1)
	require.NoError(t, client.WaitReady(waitCtx(t), 4))
	requireServes(t, server, client)
	closeQuickly(t, baseline, client, server)
}

// Random sequences of embedder requests, well-formed or not, leave a pool that serves and closes
// cleanly.
func TestRandomRequestsLeaveThePoolServing(t *testing.T) {
	baseline := runtime.NumGoroutine()
	server := startServer(t, 8)
	client := startClient(t, 4, 8, server.Addr())
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, seed))
	closed := make(chan struct{})
	close(closed)
	sharedStreams, sharedStats, sharedErrs := make(chan messages.Stream, 1), make(chan messages.Stats, 1), make(chan error, 1)
	pick := func(n int) int { return r.IntN(n) }
	var pending []chan messages.Stream // the well-formed Gets, abandoned at the end
	for round := range 400 {
		target := []*quicpool.Pool{client, server}[pick(2)]
		var m any
		switch pick(7) {
		case 0:
			g := messages.Get{
				ID:       []string{"", quicpool.ControlID, "0a0b0c0d", "zz", "ffffffff"}[pick(5)],
				NoWait:   pick(2) == 0,
				Deadline: []time.Time{{}, time.Now().Add(-time.Second), time.Now().Add(time.Duration(pick(50)) * time.Millisecond)}[pick(3)],
			}
			switch pick(5) {
			case 0:
				g.Reply = make(chan messages.Stream, 1)
				pending = append(pending, g.Reply)
			case 1:
				g.Reply = sharedStreams
			case 2:
				g.Reply = make(chan messages.Stream)
			case 3:
				g.Reply = make(chan messages.Stream, 1)
				close(g.Reply)
			}
			m = g
		case 1:
			m = messages.State{Reply: []chan messages.Stats{nil, sharedStats, make(chan messages.Stats, 1), make(chan messages.Stats)}[pick(4)]}
		case 2:
			m = messages.WaitReady{
				N:     []int{-5, 0, 1, 8, 1 << 40}[pick(5)],
				Done:  []<-chan struct{}{nil, closed, make(chan struct{})}[pick(3)],
				Reply: []chan error{nil, sharedErrs, make(chan error, 1), make(chan error)}[pick(4)],
			}
		case 3:
			m = messages.Flush{Reply: []chan struct{}{nil, make(chan struct{}, 1), make(chan struct{})}[pick(3)]}
		case 4:
			m = []any{messages.AddError{}, messages.ResetError{}}[pick(2)]
		case 5:
			m = []any{actor.Stopped{}, actor.Started{}, "junk", round}[pick(4)]
		case 6:
			if len(sharedStreams) > 0 && pick(2) == 0 { // a caller reads its shared slot now and then
				if s := <-sharedStreams; s.Stream != nil {
					quicpool.NewStreamConn(s).Close()
				}
			}
			continue
		}
		target.Engine().Send(target.Coordinator(), m)
	}
	// The random callers give up; streams handed to them are closed, and both pools drop what
	// they hold so that each side's idle streams pair up again.
	pending = append(pending, sharedStreams)
	for _, reply := range pending {
		if s, ok := messages.Abandon(reply); ok && s.Stream != nil {
			quicpool.NewStreamConn(s).Close()
		}
	}
	server.Flush()
	client.Flush()
	require.NoError(t, client.WaitReady(waitCtx(t), 4))
	require.NoError(t, server.WaitReady(waitCtx(t), 4))
	requireServes(t, server, client)
	closeQuickly(t, baseline, client, server)
}

// Packages messages and actors export only what an embedder uses: the request and reply types,
// the events, and the one function package quicpool spawns a pool with.
func TestEmbedderAPIIsAllThatIsExported(t *testing.T) {
	want := map[string][]string{
		"messages": {"Abandon", "AddError", "ConnStats", "Event", "EventAlive", "EventKind", "EventListenFailed", "EventListening",
			"EventRecovered", "EventRefused", "EventReplaced", "EventRestartScheduled", "EventShardFailed",
			"EventShardUp", "EventStandby", "EventStatelessReset", "EventSuspect", "EventSwitchOver", "EventUnavailable", "Flush", "Get", "Refusals", "ResetError", "State", "Stats", "Stream",
			"WaitBounds", "WaitHistogram", "WaitReady"},
		"actors": {"Spawn"},
	}
	for dir, names := range want {
		require.Equal(t, names, exported(t, dir), "the exported identifiers of package %s", dir)
	}
}

// exported lists the exported identifiers declared in the non-test files of dir, sorted.
func exported(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var files []*ast.File
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".go") && !strings.HasSuffix(e.Name(), "_test.go") {
			f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, e.Name()), nil, 0)
			require.NoError(t, err)
			files = append(files, f)
		}
	}
	var names []string
	for _, f := range files {
		{
			for _, decl := range f.Decls {
				switch d := decl.(type) {
				case *ast.FuncDecl:
					if d.Name.IsExported() && (d.Recv == nil || exportedReceiver(d.Recv)) {
						names = append(names, d.Name.Name)
					}
				case *ast.GenDecl:
					for _, spec := range d.Specs {
						switch s := spec.(type) {
						case *ast.TypeSpec:
							if s.Name.IsExported() {
								names = append(names, s.Name.Name)
							}
						case *ast.ValueSpec:
							for _, n := range s.Names {
								if n.IsExported() {
									names = append(names, n.Name)
								}
							}
						}
					}
				}
			}
		}
	}
	slices.Sort(names)
	return names
}

// exportedReceiver reports whether a method's receiver type is exported (go doc shows its
// methods).
func exportedReceiver(recv *ast.FieldList) bool {
	typ := recv.List[0].Type
	if star, ok := typ.(*ast.StarExpr); ok {
		typ = star.X
	}
	id, ok := typ.(*ast.Ident)
	return ok && id.IsExported()
}
