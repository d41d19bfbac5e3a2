package main

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// ---------------------------------------------------------------------------------------------
// 4c. Outage
//
// The client pool reaches the server pool through a UDP relay in this process (relay.go). While
// a bulk transfer runs on one stream, the relay drops every datagram for a while, then forwards
// again: a network outage that neither side is told about, on a connection that stays open.

// runOutage starts a pair through a relay, starts a bulk transfer, then blackholes the relay for
// cut while tunnel ops run back to back from the cut on, and measures, from the restore, until a
// tunnel op succeeds and until the bulk stream moves data again, at most wait.
func runOutage(impl Impl, s Shape, cut, wait time.Duration) DisruptionResult {
	r := DisruptionResult{Impl: impl.Name, Down: cut}
	addr, err := freeAddr()
	if err != nil {
		r.Err = err.Error()
		return r
	}
	rl, err := newRelay(addr)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer rl.Close()
	pair, err := startPairOn(impl, s, setupWait, addr, rl.Addr())
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer pair.Close()
	op := func(timeout time.Duration) error { return boundedTunnelOp(pair.Server, pair.Client, timeout) }
	if err := untilServed(op, setupWait); err != nil {
		r.Err = "never served: " + err.Error()
		return r
	}
	bulk, err := startBulk(pair)
	if err != nil {
		r.Err = "bulk: " + err.Error()
		return r
	}
	defer bulk.stop()
	if err := bulk.flowing(1<<20, 5*time.Second); err != nil {
		r.Err = "bulk: " + err.Error()
		return r
	}

	loop := startOpLoop(op)
	defer loop.stop()
	rl.Blackhole(true)
	time.Sleep(cut)
	back := time.Now()
	loop.setBack(back)
	bulk.setBack(back)
	rl.Blackhole(false)
	deadline := back.Add(wait)
	loop.wait(deadline, &r)
	bulk.wait(deadline, &r)
	return r
}

// boundedTunnelOp is tunnelOp with one bound for the whole op: the Gets and the exchange share
// timeout.
func boundedTunnelOp(server, client Pool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	id, sc, err := server.IncomingGet(timeout)
	if err != nil {
		return fmt.Errorf("IncomingGet: %w", err)
	}
	left := time.Until(deadline)
	if left <= 0 {
		abort(sc)
		return fmt.Errorf("OutgoingGet: %w", errTimeout)
	}
	cc, err := client.OutgoingGet(id, left)
	if err != nil {
		abort(sc)
		return fmt.Errorf("OutgoingGet: %w", err)
	}
	if left = time.Until(deadline); left <= 0 {
		abort(sc)
		abort(cc)
		return fmt.Errorf("exchange: %w", errTimeout)
	}
	return exchange(sc, cc, len(payload), left)
}

// bulkFlow is a stream pair on which the client writes as fast as it can and the server reads.
type bulkFlow struct {
	sc, cc  net.Conn
	read    atomic.Int64  // bytes the server has read
	back    atomic.Int64  // the restore, in Unix nanoseconds; 0 before it
	resumed atomic.Int64  // the first read after the restore, in Unix nanoseconds
	moved   chan struct{} // closed at the first read after the restore
	failed  chan struct{} // closed when a side failed; err says why
	err     error
	once    sync.Once
	halt    atomic.Bool
	wg      sync.WaitGroup
}

// startBulk takes a stream pair and starts the writer and the reader.
func startBulk(pair *Pair) (*bulkFlow, error) {
	sc, cc, err := takePair(pair.Server, pair.Client, opTimeout)
	if err != nil {
		return nil, err
	}
	b := &bulkFlow{sc: sc, cc: cc, moved: make(chan struct{}), failed: make(chan struct{})}
	b.wg.Add(2)
	go func() {
		defer b.wg.Done()
		buf := make([]byte, 64<<10)
		for {
			if _, err := cc.Write(buf); err != nil {
				b.fail(fmt.Errorf("client write: %w", err))
				return
			}
		}
	}()
	go func() {
		defer b.wg.Done()
		buf := make([]byte, 64<<10)
		for {
			n, err := sc.Read(buf)
			if n > 0 {
				b.read.Add(int64(n))
				if back := b.back.Load(); back != 0 && b.resumed.CompareAndSwap(0, time.Now().UnixNano()) {
					close(b.moved)
				}
			}
			if err != nil {
				b.fail(fmt.Errorf("server read: %w", err))
				return
			}
		}
	}()
	return b, nil
}

func (b *bulkFlow) fail(err error) {
	if b.halt.Load() {
		return // stop's doing
	}
	b.once.Do(func() { b.err = err; close(b.failed) })
}

// flowing waits until the server has read n bytes, at most wait.
func (b *bulkFlow) flowing(n int64, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for b.read.Load() < n {
		select {
		case <-b.failed:
			return b.err
		case <-time.After(time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d bytes moved in %v", b.read.Load(), wait)
		}
	}
	return nil
}

func (b *bulkFlow) setBack(t time.Time) { b.back.Store(t.UnixNano()) }

// wait waits until the stream moved data after the restore, or failed, at most until deadline,
// and writes the outcome into r.
func (b *bulkFlow) wait(deadline time.Time, r *DisruptionResult) {
	select {
	case <-b.moved:
		r.BulkOK, r.Bulk = true, max(time.Duration(b.resumed.Load()-b.back.Load()), 0)
	case <-b.failed:
		r.BulkErr = b.err.Error()
	case <-time.After(time.Until(deadline)):
	}
}

// stop releases both streams and waits for the writer and the reader, at most 10s.
func (b *bulkFlow) stop() {
	b.halt.Store(true)
	abort(b.cc)
	abort(b.sc)
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}
