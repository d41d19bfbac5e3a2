package quicpool

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A Get beyond the maxQueuedGets requests sent to the coordinator and not yet handled waits for
// room before it sends, within its own timeout: with the bound taken, a Get on a server holding
// idle streams times out without reaching the coordinator; once room frees, the next Get is
// served, and the coordinator frees the room its requests took.
func TestGetsBeyondTheAdmissionBoundWait(t *testing.T) {
	server, err := NewServer("127.0.0.1:0", selfSigned(t), WithCapacity(4, 4))
	require.NoError(t, err)
	t.Cleanup(server.Close)
	client, err := NewClient(server.Addr(), WithCapacity(4, 4),
		WithTLSConfig(&tls.Config{InsecureSkipVerify: true})) // a test's own server
	require.NoError(t, err)
	t.Cleanup(client.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, server.WaitReady(ctx, 4))

	for range maxQueuedGets {
		server.cfg.Admission <- struct{}{} // requests the coordinator has not handled yet
	}
	start := time.Now()
	_, _, err = server.IncomingGet(100 * time.Millisecond)
	require.ErrorIs(t, err, ErrTimeout, "no room: the Get waits out its timeout")
	var netErr interface{ Timeout() bool }
	require.True(t, errors.As(err, &netErr) && netErr.Timeout())
	require.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)
	require.Equal(t, 4, server.Stats().Idle, "the Get never reached the coordinator")

	waiting := make(chan error, 1)
	go func() {
		_, conn, err := server.IncomingGet(5 * time.Second)
		if err == nil {
			err = conn.Close()
		}
		waiting <- err
	}()
	for range maxQueuedGets {
		<-server.cfg.Admission // the coordinator handles what it was sent
	}
	require.NoError(t, <-waiting, "room again: the waiting Get is served")
	require.Empty(t, server.cfg.Admission, "the coordinator frees the room of each request it handles")
}

// selfSigned returns a server TLS configuration with a fresh self-signed certificate.
func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "quicpool test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}
