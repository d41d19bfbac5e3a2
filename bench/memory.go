package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// ---------------------------------------------------------------------------------------------
// 6. Memory per idle stream
//
// Each side runs in a process of its own (this program, re-run with -memchild), so that heap
// and goroutines are counted per side without the other side's share. A child measures its
// baseline before it creates its pool, fills the pool to n idle streams (or until it stops
// growing), lets it settle, collects garbage twice and reports the difference. It then stays up
// until the parent closes its stdin, so that its peer can finish measuring too. A second pair of
// children, which sample every allocation, reports what the heap is made of (heapparts.go); the
// heap itself is the first pair's, measured without the profiler.

// MemSide is what one side's process measured.
type MemSide struct {
	Idle       int   `json:"idle"`       // idle streams when measured
	Heap       int64 `json:"heap"`       // live heap over the baseline, bytes
	Goroutines int   `json:"goroutines"` // goroutines over the baseline
	// Parts is the heap's growth over the baseline by part (heapParts), from heap profiles of
	// every allocation; nil if the profiles could not be read.
	Parts map[string]int64 `json:"parts,omitempty"`
	Err   string
}

// HeapPer is the heap bytes per idle stream (0 when there are none).
func (m MemSide) HeapPer() float64 {
	if m.Idle == 0 {
		return 0
	}
	return float64(m.Heap) / float64(m.Idle)
}

// GoroutinesPer is the goroutines per idle stream.
func (m MemSide) GoroutinesPer() float64 {
	if m.Idle == 0 {
		return 0
	}
	return float64(m.Goroutines) / float64(m.Idle)
}

// MemoryResult is one run of the memory workload.
type MemoryResult struct {
	Impl           string
	N              int // idle streams asked for on each side
	Server, Client MemSide
	Err            string
}

// side returns the server's or the client's side.
func (r MemoryResult) side(name string) MemSide {
	if name == "client" {
		return r.Client
	}
	return r.Server
}

// memShape is the shape of the memory workload: n streams kept idle.
func memShape(n int) Shape {
	return Shape{MinCap: n, MaxCap: n, MinIvl: 100 * time.Millisecond, MaxIvl: time.Second, KeepAlive: 30 * time.Second}
}

// runMemory measures one implementation with a server process and a client process. Profiled
// children sample every allocation and report the heap's parts (heapparts.go).
func runMemory(impl Impl, n int, profiled bool) MemoryResult {
	r := MemoryResult{Impl: impl.Name, N: n}
	exe, err := os.Executable()
	if err != nil {
		r.Err = err.Error()
		return r
	}
	addr, err := freeAddr()
	if err != nil {
		r.Err = err.Error()
		return r
	}
	server, err := startChild(exe, "server", impl.Name, addr, n, profiled)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer server.stop()
	if _, err := server.line("listening", 15*time.Second); err != nil {
		r.Err = "server: " + err.Error()
		return r
	}
	client, err := startChild(exe, "client", impl.Name, addr, n, profiled)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer client.stop()
	for _, side := range []struct {
		c   *child
		out *MemSide
	}{{server, &r.Server}, {client, &r.Client}} {
		line, err := side.c.line("result ", 2*time.Minute)
		if err == nil {
			err = json.Unmarshal([]byte(strings.TrimPrefix(line, "result ")), side.out)
		}
		if err != nil {
			side.out.Err = err.Error()
		}
	}
	return r
}

// child is a running child process of this program (-memchild, -crashchild). It exits when its
// stdin closes, that is when stop closes it or when this process ends, however it ends.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

func startChild(exe, role, impl, addr string, n int, profiled bool) (*child, error) {
	return startProcess(exe, "-memchild", role, "-memimpl", impl, "-memaddr", addr, "-idle", fmt.Sprint(n),
		fmt.Sprintf("-memprofile=%v", profiled))
}

// startProcess starts exe with args, its stderr to ours, its stdout lines to child.line.
func startProcess(exe string, args ...string) (*child, error) {
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, stdin: stdin, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	return c, nil
}

// line waits for the child's next line starting with prefix.
func (c *child) line(prefix string, wait time.Duration) (string, error) {
	timeout := time.After(wait)
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				return "", errors.New("child exited")
			}
			if strings.HasPrefix(l, prefix) {
				return l, nil
			}
		case <-timeout:
			return "", fmt.Errorf("no %q from child within %v", prefix, wait)
		}
	}
}

// stop closes the child's stdin (it exits then) and kills it if it does not within 10s.
func (c *child) stop() {
	_ = c.stdin.Close()
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

// kill kills the child with SIGKILL (on Unix) and waits for it, at most 10s.
func (c *child) kill() {
	_ = c.cmd.Process.Kill()
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
	_ = c.stdin.Close()
}

// prefiller is a pool that has to be told to open its idle streams (raw quic-go keeps none by
// itself).
type prefiller interface{ Prefill(n int) error }

// memChild is the -memchild mode: one side of the memory workload. It never returns.
func memChild(role, implName, addr string, n int, profiled bool) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "memchild:", err)
		os.Exit(1)
	}
	impl, ok := implByName(implName)
	if !ok {
		fail(fmt.Errorf("unknown implementation %q", implName))
	}
	if profiled {
		runtime.MemProfileRate = 1 // every allocation, for the heap's parts
	}
	heap0, g0 := settledHeap()
	var parts0 map[string]int64
	var perr error
	if profiled {
		parts0, perr = heapNow()
	}
	s := memShape(n)
	var pool Pool
	var err error
	if role == "server" {
		pool, err = impl.NewServer(s, addr)
		fmt.Println("listening")
	} else {
		pool, err = impl.NewClient(s, addr)
		if p, ok := pool.(prefiller); ok && err == nil {
			err = p.Prefill(n)
		}
	}
	if err != nil {
		fail(err)
	}
	// Wait for n idle streams, or until the count has not grown for 2s (vistone's server keeps
	// at most 128, whatever its maxCap), at most a minute.
	deadline := time.Now().Add(time.Minute)
	last, lastGrew := 0, time.Now()
	for {
		idle := pool.Active()
		if idle >= n || time.Now().After(deadline) {
			break
		}
		if idle > last {
			last, lastGrew = idle, time.Now()
		} else if idle > 0 && time.Since(lastGrew) > 2*time.Second {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	heap1, g1 := settledHeap()
	side := MemSide{Idle: pool.Active(), Heap: heap1 - heap0, Goroutines: g1 - g0}
	if profiled && perr == nil {
		if parts1, err := heapNow(); err == nil {
			side.Parts = heapGrowth(parts0, parts1)
		}
	}
	out, _ := json.Marshal(side)
	fmt.Printf("result %s\n", out)
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent is done with us
	os.Exit(0)                           // no Close: NodePass's Close races with its manager
}

// settledHeap collects garbage twice and returns the live heap and the goroutine count.
func settledHeap() (int64, int) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc), runtime.NumGoroutine()
}
