package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"
)

// ---------------------------------------------------------------------------------------------
// 4b. Crash
//
// The server pool runs in a child process (this program, re-run with -crashchild) so that it
// can be killed with SIGKILL: no CONNECTION_CLOSE, no stream reset, nothing tells the client.
// The child takes every stream with IncomingGet and echoes it; the client pool, in this
// process, takes any idle stream with IncomingGet (raw quic-go: opens a fresh one), writes 1 KiB,
// half-closes and reads the echo to EOF. The same op before and after, so no ID has to cross
// from the child to this process.

// runCrash starts a server child and a client pool, waits until an op succeeds and the client
// holds minCap idle streams, then kills the child, starts it again down later on the same port
// with the same certificate, and runs ops back to back from the kill until one succeeds after
// the restart, at most wait after it.
func runCrash(impl Impl, s Shape, down, wait time.Duration) DisruptionResult {
	r := DisruptionResult{Impl: impl.Name, Down: down}
	exe, err := os.Executable()
	if err != nil {
		r.Err = err.Error()
		return r
	}
	dir, err := os.MkdirTemp("", "quicpool-bench-crash")
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer os.RemoveAll(dir)
	certFile, keyFile, err := writeServerCert(dir)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	addr, err := freeAddr()
	if err != nil {
		r.Err = err.Error()
		return r
	}
	start := func() (*child, error) {
		c, err := startProcess(exe, "-crashchild", impl.Name, "-crashaddr", addr, "-crashcert", certFile,
			"-crashkey", keyFile, "-shapes", fmt.Sprintf("%d/%d", s.MinCap, s.MaxCap))
		if err != nil {
			return nil, err
		}
		if _, err := c.line("listening", 15*time.Second); err != nil {
			c.kill()
			return nil, err
		}
		return c, nil
	}
	server, err := start()
	if err != nil {
		r.Err = "server: " + err.Error()
		return r
	}
	defer func() { server.kill() }()
	client, err := impl.NewClient(s, addr)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer boundedClose(client)

	op := func(timeout time.Duration) error { return echoOp(client, timeout) }
	if err := untilServed(op, setupWait); err != nil {
		r.Err = "never served: " + err.Error()
		return r
	}
	if impl.Pooled {
		deadline := time.Now().Add(setupWait)
		for client.Active() < s.MinCap {
			if time.Now().After(deadline) {
				r.Err = fmt.Sprintf("the client holds %d idle streams, not %d, after %v", client.Active(), s.MinCap, setupWait)
				return r
			}
			time.Sleep(time.Millisecond)
		}
	}

	loop := startOpLoop(op)
	defer loop.stop()
	server.kill()
	time.Sleep(down)
	deadline := time.Now().Add(10 * time.Second)
	for {
		again, err := start()
		if err == nil {
			server = again
			break
		}
		if time.Now().After(deadline) {
			r.Err = "the server did not start again: " + err.Error()
			return r
		}
		time.Sleep(50 * time.Millisecond)
	}
	back := time.Now()
	loop.setBack(back)
	loop.wait(back.Add(wait), &r)
	return r
}

// untilServed runs op until it succeeds, at most for wait.
func untilServed(op func(time.Duration) error, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		err := withTimeout(disruptOp+hangGrace, func() error { return op(disruptOp) })
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// echoOp takes any idle stream from the client pool, writes 1 KiB, half-closes and reads the
// server's echo to EOF, all within timeout.
func echoOp(client Pool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	_, c, err := client.IncomingGet(timeout)
	if err != nil {
		return fmt.Errorf("IncomingGet: %w", err)
	}
	return echoExchange(c, time.Until(deadline))
}

// writeServerCert writes serverTLS's certificate and key as PEM files in dir, for the child.
func writeServerCert(dir string) (certFile, keyFile string, err error) {
	cert := serverTLS.Certificates[0]
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

// crashChild is the -crashchild mode: a server of one implementation on addr with the given
// certificate, which echoes every stream it takes. It prints "listening" once the server is
// started and exits when its stdin closes (or when it is killed). It never returns.
func crashChild(implName, addr, certFile, keyFile string, s Shape) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "crashchild:", err)
		os.Exit(1)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		fail(err)
	}
	serverTLS = &tls.Config{Certificates: []tls.Certificate{cert}} // what every NewServer presents
	impl, ok := implByName(implName)
	if !ok {
		fail(fmt.Errorf("unknown implementation %q", implName))
	}
	server, err := impl.NewServer(s, addr)
	if err != nil {
		fail(err)
	}
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin) // until the parent is done with us, or gone
		os.Exit(0)
	}()
	fmt.Println("listening")
	for {
		_, c, err := server.IncomingGet(time.Second)
		if err != nil {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		go echo(c)
	}
}

// echo writes back what it reads until EOF, then half-closes and closes.
func echo(c net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				abort(c)
				return
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			abort(c)
			return
		}
	}
	_ = halfClose(c)
	_ = c.Close()
}
