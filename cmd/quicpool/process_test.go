package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/quicpool/quicpool"
)

// The tests in this file run the built command as real processes on 127.0.0.1, against a real
// HTTP server, and synchronise on what the processes print.

// startupTimeout bounds every wait for a process to print what it prints when all is well.
const startupTimeout = 15 * time.Second

var built struct { // the command, built once for the tests
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// quicpoolBinary builds the command once for the whole test run and returns its path.
func quicpoolBinary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "quicpool-test-"); built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "quicpool")
		out, err := exec.Command("go", "build", "-o", built.path, ".").CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

// output collects what a process writes to one of its streams, line by line, and lets a test
// wait for a line.
type output struct {
	mu      sync.Mutex
	lines   []string
	partial []byte
	grew    chan struct{} // closed and replaced whenever a line arrives
}

func newOutput() *output { return &output{grew: make(chan struct{})} }

func (o *output) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.partial = append(o.partial, b...)
	added := false
	for {
		i := bytes.IndexByte(o.partial, '\n')
		if i < 0 {
			break
		}
		o.lines = append(o.lines, string(o.partial[:i]))
		o.partial = o.partial[i+1:]
		added = true
	}
	if added {
		close(o.grew)
		o.grew = make(chan struct{})
	}
	return len(b), nil
}

// find returns the first line at or after index from that matches re, and the index after it.
func (o *output) find(re *regexp.Regexp, from int) (line string, next int, grew <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := from; i < len(o.lines); i++ {
		if re.MatchString(o.lines[i]) {
			return o.lines[i], i + 1, nil
		}
	}
	return "", from, o.grew
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.Join(o.lines, "\n") + string(o.partial)
}

// process is a quicpool command running as a child process.
type process struct {
	t              *testing.T
	name           string
	cmd            *exec.Cmd
	stdout, stderr *output
	exited         chan struct{} // closed when cmd.Wait has returned
	err            error         // the result of cmd.Wait, once exited is closed
	seen           int           // stderr lines already matched by expectLog
}

// startProcess runs the command with args. It is killed at the end of the test if it is still
// running, and its output is logged if the test failed.
func startProcess(t *testing.T, name string, args ...string) *process {
	t.Helper()
	p := &process{t: t, name: name, cmd: exec.Command(quicpoolBinary(t), args...),
		stdout: newOutput(), stderr: newOutput(), exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		if !p.hasExited() {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s %q\nstdout:\n%s\nstderr:\n%s", p.name, args, p.stdout, p.stderr)
		}
	})
	return p
}

func (p *process) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// expect waits up to timeout for a line of o matching pattern, from line index *from on, and
// returns it; it fails the test if none comes, or if the process exits first.
func (p *process) expect(o *output, from *int, pattern string, timeout time.Duration) string {
	p.t.Helper()
	re := regexp.MustCompile(pattern)
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		line, next, grew := o.find(re, *from)
		if grew == nil {
			*from = next
			return line
		}
		select {
		case <-grew:
		case <-p.exited:
			if line, next, grew := o.find(re, *from); grew == nil {
				*from = next
				return line
			}
			p.t.Fatalf("%s exited (%v) before printing %q", p.name, p.err, pattern)
		case <-deadline.C:
			p.t.Fatalf("%s printed no %q within %v", p.name, pattern, timeout)
		}
	}
}

// expectLog waits for a log line (stderr) matching pattern after the last one expectLog found.
func (p *process) expectLog(pattern string, timeout time.Duration) string {
	p.t.Helper()
	return p.expect(p.stderr, &p.seen, pattern, timeout)
}

// signal sends sig to the process.
func (p *process) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
}

// wait waits up to timeout for the process to exit and returns its exit code (-1 if a signal
// ended it); it fails the test if the process does not exit in time.
func (p *process) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.t.Fatalf("%s did not exit within %v", p.name, timeout)
	}
	var exit *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &exit):
		return exit.ExitCode()
	default:
		p.t.Fatalf("%s: %v", p.name, p.err)
		return -1
	}
}

// stop interrupts the process and checks that it exits 0 within timeout.
func (p *process) stop(timeout time.Duration) {
	p.t.Helper()
	p.signal(os.Interrupt)
	if code := p.wait(timeout); code != 0 {
		p.t.Errorf("%s exited %d after SIGINT, want 0", p.name, code)
	}
}

var (
	serverLine  = regexp.MustCompile(`^quicpool server: listening on (\S+), forwarding to \S+, fingerprint ([0-9a-f]{64})$`)
	commandLine = regexp.MustCompile(`^  quicpool client (.*)$`)
	clientLine  = regexp.MustCompile(`^quicpool client: listening on (\S+), forwarding to `)
)

// tunnelServer is a running `quicpool server`.
type tunnelServer struct {
	*process
	addr, fingerprint string
	clientArgs        []string // the client command line it printed, without "quicpool client"
	identity          string   // its line about where the certificate comes from
}

// startServer runs `quicpool server` with args and waits for its startup lines.
func startServer(t *testing.T, args ...string) *tunnelServer {
	t.Helper()
	p := startProcess(t, "server", append([]string{"server"}, args...)...)
	var seen int
	m := serverLine.FindStringSubmatch(p.expect(p.stdout, &seen, serverLine.String(), startupTimeout))
	s := &tunnelServer{process: p, addr: m[1], fingerprint: m[2]}
	s.identity = p.expect(p.stdout, &seen, `^quicpool server: .*certificate`, startupTimeout)
	cmd := commandLine.FindStringSubmatch(p.expect(p.stdout, &seen, commandLine.String(), startupTimeout))
	s.clientArgs = strings.Fields(cmd[1])
	return s
}

// tunnelClient is a running `quicpool client`.
type tunnelClient struct {
	*process
	listen string // the TCP address it forwards
}

// startClient runs `quicpool client` with args on a free local port and waits until it is
// connected to its server.
func startClient(t *testing.T, args ...string) *tunnelClient {
	t.Helper()
	c := startClientNoWait(t, args...)
	c.expectLog(`msg="connected to the server"`, startupTimeout)
	return c
}

func startClientNoWait(t *testing.T, args ...string) *tunnelClient {
	t.Helper()
	p := startProcess(t, "client", append([]string{"client", "-listen", "127.0.0.1:0"}, args...)...)
	var seen int
	m := clientLine.FindStringSubmatch(p.expect(p.stdout, &seen, clientLine.String(), startupTimeout))
	return &tunnelClient{process: p, listen: m[1]}
}

// startWeb starts the HTTP server the tunnels lead to: "/" answers "hello", "/slow" sends 1 KiB
// every 20ms until the client goes away or a minute has passed.
func startWeb(t *testing.T) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "hello") })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte("x"), 1024)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		end := time.After(time.Minute)
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-tick.C:
			case <-end:
				return
			case <-r.Context().Done():
				return
			}
		}
	})
	web := httptest.NewServer(mux)
	t.Cleanup(web.Close)
	return web.Listener.Addr().String()
}

// get is curl: one GET through the tunnel at addr on a new TCP connection, bounded by timeout.
func get(addr, path string, timeout time.Duration) (string, error) {
	c := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = errors.New(resp.Status)
	}
	return string(body), err
}

// mustGet fails the test unless a GET of "/" through the tunnel at addr answers "hello".
func mustGet(t *testing.T, addr string) {
	t.Helper()
	body, err := get(addr, "/", 5*time.Second)
	if err != nil || body != "hello" {
		t.Fatalf("GET through %s: %q, %v", addr, body, err)
	}
}

// mustBeRefused fails the test unless a GET through the tunnel at addr fails at once.
func mustBeRefused(t *testing.T, addr string) {
	t.Helper()
	start := time.Now()
	body, err := get(addr, "/", 5*time.Second)
	if err == nil {
		t.Fatalf("GET through %s while the server is unreachable answered %q", addr, body)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("GET through %s while the server is unreachable failed after %v, not at once: %v", addr, took, err)
	}
}

// download is a slow transfer through a tunnel: a GET of "/slow" whose body is read as it
// comes.
type download struct {
	bytes atomic.Int64
	first chan struct{} // closed when the first bytes have arrived
	done  chan error    // the error that ended the body (nil: it ended cleanly)
}

func startDownload(t *testing.T, addr string) *download {
	t.Helper()
	d := &download{first: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get("http://" + addr + "/slow")
		if err != nil {
			d.done <- err
			return
		}
		defer resp.Body.Close()
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			if n > 0 && d.bytes.Add(int64(n)) == int64(n) {
				close(d.first)
			}
			if err != nil {
				if err == io.EOF {
					err = nil
				}
				d.done <- err
				return
			}
		}
	}()
	select {
	case <-d.first:
	case err := <-d.done:
		t.Fatalf("download through %s: %v before any byte", addr, err)
	case <-time.After(startupTimeout):
		t.Fatalf("download through %s: no byte within %v", addr, startupTimeout)
	}
	return d
}

// flowing fails the test unless more bytes arrive on d within timeout.
func (d *download) flowing(t *testing.T, timeout time.Duration) {
	t.Helper()
	before := d.bytes.Load()
	deadline := time.Now().Add(timeout)
	for d.bytes.Load() == before {
		if time.Now().After(deadline) {
			t.Fatalf("the download stalled at %d bytes", before)
		}
		select {
		case err := <-d.done:
			t.Fatalf("the download ended: %v", err)
		case <-time.After(10 * time.Millisecond): // polling a counter, not synchronisation
		}
	}
}

// freeUDP returns a loopback UDP address whose port was free a moment ago.
func freeUDP(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().String()
}

// The server is killed with SIGKILL while a client runs, and restarted with the same state
// directory: it has the same fingerprint, the client is still running, refuses connections at
// once while the server is down, and forwards again within 2s of the restart. Both exit 0 and
// promptly on SIGINT when idle.
func TestServerKilledAndRestarted(t *testing.T) {
	t.Parallel()
	web := startWeb(t)
	state := t.TempDir()
	addr := freeUDP(t)
	server := startServer(t, "-listen", addr, "-target", web, "-state", state)
	if !strings.Contains(server.identity, "new certificate saved to "+filepath.Join(state, identityFile)) {
		t.Errorf("first start: %q, want a new certificate in %s", server.identity, state)
	}
	client := startClient(t, append(server.clientArgs, "-v")...) // the command line the server printed
	mustGet(t, client.listen)

	server.signal(syscall.SIGKILL)
	server.wait(startupTimeout)
	client.expectLog(`level=WARN msg="server unreachable: refusing new connections`, 10*time.Second)
	mustBeRefused(t, client.listen)
	client.expectLog(`msg="refused a connection: the server is unreachable"`, time.Second)

	fp := server.fingerprint
	server = startServer(t, "-listen", addr, "-target", web, "-state", state)
	restarted := time.Now()
	if server.fingerprint != fp {
		t.Errorf("the restarted server's fingerprint %s differs from the first's", server.fingerprint)
	}
	if !strings.Contains(server.identity, "certificate "+filepath.Join(state, identityFile)) || strings.Contains(server.identity, "new") {
		t.Errorf("restart: %q, want the certificate kept in %s", server.identity, state)
	}
	line := client.expectLog(`msg="server reachable again: accepting connections" outage=\S+ refused=[1-9]`, 2*time.Second)
	mustGet(t, client.listen)
	took := time.Since(restarted)
	t.Logf("served %v after the restart; %s", took.Round(time.Millisecond), line)
	if took > 2*time.Second {
		t.Errorf("the client served %v after the restart, want within 2s", took)
	}
	if client.hasExited() {
		t.Fatal("the client exited")
	}

	client.stop(defaultGrace + time.Second)
	start := time.Now()
	server.stop(time.Second)
	t.Logf("the idle server exited %v after SIGINT", time.Since(start).Round(time.Millisecond))
}

// A server process stopped (SIGSTOP) during a download, for longer than the second after which
// the client dials a standby, and then continued: the download carries on. The standby takes
// over new tunnels (or is dropped, if the old connection answers first), and the connection the
// download is on drains instead of closing.
func TestDownloadSurvivesAStoppedServer(t *testing.T) {
	t.Parallel()
	web := startWeb(t)
	server := startServer(t, "-listen", "127.0.0.1:0", "-target", web, "-state", t.TempDir())
	client := startClient(t, append(server.clientArgs, "-debug")...)
	slow := startDownload(t, client.listen)

	server.signal(syscall.SIGSTOP)
	client.expectLog(`level=WARN msg="peer silent"`, 5*time.Second)
	client.expectLog(`msg="server unreachable`, 5*time.Second)
	server.signal(syscall.SIGCONT)
	line := client.expectLog(`msg="(switched over to a new connection|peer answers again)`, 5*time.Second)
	t.Logf("after SIGCONT: %s", line)
	slow.flowing(t, 5*time.Second)
	slow.flowing(t, time.Second)
	client.expectLog(`msg="server reachable again`, 5*time.Second)
	mustGet(t, client.listen)
	client.stop(defaultGrace + time.Second)
	server.stop(time.Second)
}

// A path that goes dark for 45s (every datagram dropped by a UDP relay): the client survives,
// refuses connections at once meanwhile, and forwards again within the pool's bound after the
// path returns.
func TestOutage45s(t *testing.T) {
	if testing.Short() {
		t.Skip("a 45s outage")
	}
	t.Parallel()
	web := startWeb(t)
	server := startServer(t, "-listen", "127.0.0.1:0", "-target", web, "-state", t.TempDir())
	relay := startRelay(t, server.addr)
	client := startClient(t, "-server", relay.addr(), "-fingerprint", server.fingerprint)
	mustGet(t, client.listen)

	relay.dark.Store(true)
	client.expectLog(`level=WARN msg="server unreachable: refusing new connections`, 10*time.Second)
	mustBeRefused(t, client.listen)
	<-time.After(45 * time.Second) // the length of the outage: the scenario, not a synchronisation
	relay.dark.Store(false)
	restored := time.Now()

	// The pool's bound after an outage that outlasted its connection (3 keep-alives, 30s):
	// dials follow the restart policy's backoff, so it serves within its ceiling and a second.
	bound := quicpool.DefaultRestartPolicy.MaxBackoff + time.Second
	line := client.expectLog(`msg="server reachable again: accepting connections" outage=\S+`, bound)
	mustGet(t, client.listen)
	took := time.Since(restored)
	t.Logf("served %v after the path returned; %s", took.Round(time.Millisecond), line)
	if took > bound {
		t.Errorf("the client served %v after the path returned, want within %v", took, bound)
	}
	client.stop(defaultGrace + time.Second)
	server.stop(time.Second)
}

// SIGINT during a slow transfer: the client stops accepting, says it drains 1 tunnel, cuts it
// when the grace period is over, and exits 0 within the grace period plus 1s. Then a second
// SIGINT during a drain exits at once.
func TestShutdownDrainsThenCuts(t *testing.T) {
	t.Parallel()
	web := startWeb(t)
	server := startServer(t, "-listen", "127.0.0.1:0", "-target", web, "-state", t.TempDir(), "-grace", "1s")
	const grace = 2 * time.Second
	client := startClient(t, append(server.clientArgs, "-grace", grace.String())...)
	slow := startDownload(t, client.listen)

	start := time.Now()
	client.signal(os.Interrupt)
	client.expectLog(`msg="shutting down: draining 1 tunnel" grace=2s`, time.Second)
	if code := client.wait(grace + time.Second); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	took := time.Since(start)
	client.expectLog(`level=WARN msg="grace period over: closing 1 tunnel"`, 0)
	client.expectLog(`msg=stopped`, 0)
	if took < grace {
		t.Errorf("exited %v after SIGINT, before the grace period of %v was over", took, grace)
	}
	if err := <-slow.done; err == nil {
		t.Error("the slow download ended cleanly; it should have been cut")
	}
	t.Logf("exited %v after SIGINT", took.Round(time.Millisecond))

	client = startClient(t, append(server.clientArgs, "-grace", "1m")...)
	startDownload(t, client.listen)
	client.signal(os.Interrupt)
	client.expectLog(`msg="shutting down: draining 1 tunnel" grace=1m0s`, time.Second)
	client.signal(os.Interrupt)
	if code := client.wait(time.Second); code != 1 {
		t.Errorf("exit code %d after a second SIGINT, want 1", code)
	}
	if !strings.Contains(client.stderr.String(), "second signal") {
		t.Error("no word of the second signal")
	}
	server.stop(2 * time.Second) // it drains the tunnel the killed client left, for 1s at most
}

// A server shutting down tells a client that opens a tunnel meanwhile why it refuses it.
func TestServerDrainingRefusesNewTunnels(t *testing.T) {
	t.Parallel()
	web := startWeb(t)
	server := startServer(t, "-listen", "127.0.0.1:0", "-target", web, "-state", t.TempDir(), "-grace", "1m")
	client := startClient(t, server.clientArgs...)
	startDownload(t, client.listen)
	server.signal(os.Interrupt)
	server.expectLog(`msg="shutting down: draining 1 tunnel"`, 5*time.Second)
	if _, err := get(client.listen, "/", 5*time.Second); err == nil {
		t.Error("a tunnel opened through a server that is shutting down")
	}
	client.expectLog(`level=WARN msg="tunnel closed" .*the server is shutting down`, 5*time.Second)
	server.expectLog(`msg="refused a tunnel: shutting down"`, 5*time.Second)
	client.stop(defaultGrace + time.Second) // it cuts the download: the server's drain ends
	if code := server.wait(2 * time.Second); code != 0 {
		t.Errorf("the server exited %d, want 0", code)
	}
}

// Two clients at once on one server: both carry traffic, and the first one's long transfer goes
// on while the second connects and works.
func TestTwoClients(t *testing.T) {
	t.Parallel()
	web := startWeb(t)
	server := startServer(t, "-listen", "127.0.0.1:0", "-target", web, "-state", t.TempDir(), "-v", "-grace", "1s")
	first := startClient(t, append(server.clientArgs, "-grace", "1s")...)
	server.expectLog(`msg="client connected" client=\S+ clients=1`, startupTimeout)
	slow := startDownload(t, first.listen)

	second := startClient(t, server.clientArgs...)
	server.expectLog(`msg="client connected" client=\S+ clients=2`, startupTimeout)
	var wg sync.WaitGroup
	for _, c := range []*tunnelClient{first, second, first, second, first, second} {
		wg.Go(func() {
			if body, err := get(c.listen, "/", 5*time.Second); err != nil || body != "hello" {
				t.Errorf("GET through %s: %q, %v", c.listen, body, err)
			}
		})
	}
	wg.Wait()
	slow.flowing(t, 2*time.Second)
	if first.hasExited() || second.hasExited() {
		t.Fatal("a client exited")
	}
	if strings.Contains(server.stderr.String(), "client disconnected") {
		t.Error("a client was disconnected")
	}
	for _, c := range []*tunnelClient{first, second} {
		c.stop(2 * time.Second)
	}
	server.stop(2 * time.Second)
}

// A client the server has no room for says so once, and neither flaps between "reachable" and
// "unreachable" nor forwards meanwhile; it gets in once the other client leaves.
func TestFullServerRefusesASecondClient(t *testing.T) {
	t.Parallel()
	web := startWeb(t)
	server := startServer(t, "-listen", "127.0.0.1:0", "-target", web, "-state", t.TempDir(), "-clients", "1")
	first := startClient(t, server.clientArgs...)
	second := startClientNoWait(t, server.clientArgs...) // from the same address: no slot left
	second.expectLog(`level=WARN msg="the server is full: it refuses this client's connection; retrying" reason=.*pool full`, startupTimeout)
	for range 3 { // three more refusals (the client retries within -retry, 1s)
		server.expectLog(`level=WARN msg="refused a client" .*pool full`, 5*time.Second)
	}
	mustBeRefused(t, second.listen)
	log := second.stderr.String()
	if n := strings.Count(log, "the server is full"); n != 1 {
		t.Errorf("the second client said %d times that the server is full, want once", n)
	}
	for _, flap := range []string{"connected to the server", "reachable again", "server unreachable"} {
		if strings.Contains(log, flap) {
			t.Errorf("the refused client logged %q", flap)
		}
	}

	first.stop(defaultGrace + time.Second)
	second.expectLog(`msg="connected to the server"`, 10*time.Second)
	mustGet(t, second.listen)
	second.stop(defaultGrace + time.Second)
	server.stop(2 * time.Second)
}

// A client must be told how to check its server: without -fingerprint, -ca or -insecure it
// refuses to start and names the three. With -ca (and -tls 2) it verifies a CA-signed server,
// and it refuses to start against a server that fails its check.
func TestClientIdentityCheck(t *testing.T) {
	t.Parallel()
	p := startProcess(t, "client", "client", "-server", "127.0.0.1:4433")
	if code := p.wait(startupTimeout); code != 2 {
		t.Errorf("exit code %d without an identity check, want 2", code)
	}
	for _, choice := range []string{"-fingerprint HEX", "-ca FILE", "-insecure"} {
		if !strings.Contains(p.stderr.String(), choice) {
			t.Errorf("the refusal does not name %s:\n%s", choice, p.stderr)
		}
	}

	dir := t.TempDir()
	ca, cert, key := writeCA(t, dir, "ca"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeLeaf(t, dir, "ca", cert, key)
	otherCA := writeCA(t, dir, "other")
	web := startWeb(t)
	server := startServer(t, "-listen", "127.0.0.1:0", "-target", web, "-cert", cert, "-key", key)

	client := startClient(t, "-server", server.addr, "-tls", "2", "-ca", ca, "-servername", "localhost")
	mustGet(t, client.listen)
	client.stop(defaultGrace + time.Second)

	for _, check := range [][]string{
		{"-ca", otherCA, "-servername", "localhost"},
		{"-fingerprint", strings.Repeat("00", 32)},
	} {
		c := startClientNoWait(t, append([]string{"-server", server.addr}, check...)...)
		if code := c.wait(startupTimeout); code != 1 {
			t.Errorf("%q: exit code %d against a server that fails the check, want 1", check, code)
		}
		if !strings.Contains(c.stderr.String(), "cannot connect to "+server.addr) {
			t.Errorf("%q: no reason given:\n%s", check, c.stderr)
		}
	}
	server.stop(defaultGrace + time.Second)
}
