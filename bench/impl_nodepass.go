package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"

	npquic "github.com/NodePassProject/quic"
)

// nodePassImpl is github.com/NodePassProject/quic v1.1.1, used as its README shows: the
// managers run in their own goroutines.
//
// NodePass's pool replaces its ctx in ClientManager/ServerManager (cancelling the one it had)
// and reads it unsynchronised everywhere else: a Get that starts before the manager has replaced
// it fails at once ("stream not found": its context was cancelled under it), and a Close before
// that would leave the manager running forever. So NewClient returns only once the manager has
// asked its resolver for the address, which it does after replacing ctx; and a server's Gets
// wait for its first TLS handshake, which runs in a goroutine the manager started after
// replacing ctx.
func nodePassImpl() Impl {
	return Impl{
		Name:   nameNodePass,
		Pooled: true,
		NewServer: func(s Shape, addr string) (Pool, error) {
			tlsConf, started := signallingTLS()
			p := npquic.NewServerPool(s.MaxCap, "", tlsConf, addr, s.KeepAlive)
			if p == nil {
				return nil, fmt.Errorf("NodePass: no server pool for %q", addr)
			}
			go p.ServerManager()
			return &nodePassServer{Pool: p, started: started}, nil
		},
		NewClient: func(s Shape, addr string) (Pool, error) {
			resolver, started := signallingResolver(addr)
			p := npquic.NewClientPool(s.MinCap, s.MaxCap, s.MinIvl, s.MaxIvl, s.KeepAlive,
				"1", "localhost", resolver)
			go p.ClientManager()
			select {
			case <-started:
			case <-time.After(5 * time.Second):
				return nil, fmt.Errorf("NodePass: client manager did not start")
			}
			return p, nil
		},
	}
}

// signallingResolver returns a resolver for addr and a channel closed on its first call.
func signallingResolver(addr string) (func() (string, error), <-chan struct{}) {
	started := make(chan struct{})
	first := make(chan struct{}, 1)
	first <- struct{}{}
	return func() (string, error) {
		select {
		case <-first:
			close(started)
		default:
		}
		return addr, nil
	}, started
}

// nodePassServer is a NodePass server pool whose Gets wait until its manager has run.
type nodePassServer struct {
	*npquic.Pool
	started <-chan struct{}
}

// wait waits up to timeout for the manager to have run, and returns the time left.
func (s *nodePassServer) wait(timeout time.Duration) time.Duration {
	start := time.Now()
	select {
	case <-s.started:
	case <-time.After(timeout):
	}
	return timeout - time.Since(start)
}

func (s *nodePassServer) IncomingGet(timeout time.Duration) (string, net.Conn, error) {
	return s.Pool.IncomingGet(s.wait(timeout))
}

func (s *nodePassServer) OutgoingGet(id string, timeout time.Duration) (net.Conn, error) {
	return s.Pool.OutgoingGet(id, s.wait(timeout))
}

// signallingTLS returns the server certificate in a config that closes started on the first
// TLS handshake.
func signallingTLS() (*tls.Config, <-chan struct{}) {
	started := make(chan struct{})
	var once sync.Once
	cert := serverTLS.Certificates[0]
	return &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		once.Do(func() { close(started) })
		return &cert, nil
	}}, started
}
