package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/quicpool/quicpool"
)

// Timeouts of the tunnel commands.
const (
	tunnelGetTimeout = 5 * time.Second  // IncomingGet (client) and OutgoingGet(id) (server)
	controlTimeout   = 10 * time.Second // the client's wait for the control stream
	dialTimeout      = 5 * time.Second  // the server's dial of its target
	keepAlive        = 10 * time.Second // the pools' QUIC keep-alive
)

// The wire protocol of the tunnel commands, on top of the pool. The client takes an idle stream
// with IncomingGet and writes its ID, 8 hex characters and '\n', on the control stream
// (quicpool.ControlID); the server reads the line, takes the same stream with OutgoingGet(id)
// and dials its target. From then on the stream carries the TCP connection's bytes both ways.

// newLogger returns the logger of a tunnel command: warnings and errors to w, and with verbose
// also the opening and closing of every tunnel and the pool's connection events.
func newLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// fingerprint returns the SHA-256 of a DER certificate in lowercase hex, as the server prints it
// and the client's -fingerprint takes it.
func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// parseFingerprint normalises a -fingerprint value: hex of 32 bytes, either case, colons
// allowed (as openssl prints it). "" stays "" (nothing to check).
func parseFingerprint(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	s = strings.ToLower(strings.ReplaceAll(s, ":", ""))
	if b, err := hex.DecodeString(s); err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("-fingerprint %q is not the hex of a SHA-256 (64 hex characters)", s)
	}
	return s, nil
}

// peerFingerprint returns the fingerprint of the certificate the server presented on the
// connection of stream c.
func peerFingerprint(c net.Conn) (string, error) {
	sc, ok := c.(*quicpool.StreamConn)
	if !ok {
		return "", fmt.Errorf("unexpected connection type %T", c)
	}
	certs := sc.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return "", errors.New("the server presented no certificate")
	}
	return fingerprint(certs[0].Raw), nil
}

// checkPeer returns an error unless the server's certificate on the connection of stream c has
// the fingerprint want; want == "" accepts any certificate.
func checkPeer(c net.Conn, want string) error {
	got, err := peerFingerprint(c)
	if err != nil {
		return err
	}
	if want != "" && got != want {
		return fmt.Errorf("server certificate fingerprint %s does not match -fingerprint %s", got, want)
	}
	return nil
}

// pipe copies between a TCP connection and a pool stream in both directions and returns when
// both directions have ended, with the bytes sent up (TCP to stream) and down (stream to TCP)
// and the first error. An EOF is passed on as a half-close: the TCP side's EOF closes the
// stream's write side (the peer reads EOF), the stream's EOF closes the TCP write side, and the
// other direction keeps flowing until its own EOF. An error in either direction aborts both at
// once (see abort). tcp and s are closed when pipe returns.
func pipe(tcp *net.TCPConn, s *quicpool.StreamConn) (up, down int64, err error) {
	done := make(chan error, 2)
	go func() {
		n, err := io.Copy(s, tcp)
		if err == nil {
			err = s.Stream.Close() // FIN: the peer reads EOF; our read side stays open
		}
		up = n
		done <- err
	}()
	go func() {
		n, err := io.Copy(tcp, s)
		if err == nil {
			err = tcp.CloseWrite()
		}
		down = n
		done <- err
	}()
	for range 2 {
		if e := <-done; e != nil && err == nil {
			err = e
			abort(tcp, s) // unblocks the other direction
		}
	}
	if err == nil {
		_ = s.Close() // both directions ended cleanly: release the stream
		_ = tcp.Close()
	}
	return up, down, err
}

// abort ends a broken tunnel so that neither end mistakes it for a complete one: the stream is
// reset both ways (the peer's reads and writes fail) and the TCP connection is reset (RST, not
// FIN). It unblocks a Read or Write in progress on either, which StreamConn.Close does not
// promise for a Write (quic-go forbids closing a stream's write side while a Write is blocked),
// so after abort the stream must not be closed with Close. Either may be nil.
func abort(tcp *net.TCPConn, s *quicpool.StreamConn) {
	if s != nil {
		s.Stream.CancelRead(0)
		s.Stream.CancelWrite(0)
	}
	if tcp != nil {
		_ = tcp.SetLinger(0)
		_ = tcp.Close()
	}
}
