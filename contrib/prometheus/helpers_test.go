package quicpoolprom

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/quicpool/quicpool"
	"github.com/quicpool/quicpool/messages"
	"github.com/stretchr/testify/require"
)

// The tests run real pools over QUIC on loopback, and synchronise on the pools' state.

// waitBound bounds every wait for an event in these tests.
const waitBound = 20 * time.Second

// selfSigned returns a server TLS config with a fresh self-signed certificate for localhost.
func selfSigned(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

func waitCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	t.Cleanup(cancel)
	return ctx
}

// startServer starts a server pool on a free loopback port and waits until it listens.
func startServer(t testing.TB, maxCap int, opts ...quicpool.Option) *quicpool.Pool {
	t.Helper()
	p := quicpool.NewServerPool(maxCap, "", selfSigned(t), "127.0.0.1:0", 10*time.Second, opts...)
	go p.ServerManager()
	t.Cleanup(p.Close)
	require.NoError(t, p.WaitReady(waitCtx(t), 0))
	return p
}

// startClient starts a client pool against addr and waits until it holds minCap idle streams.
func startClient(t testing.TB, minCap, maxCap int, addr string, opts ...quicpool.Option) *quicpool.Pool {
	t.Helper()
	p := quicpool.NewClientPool(minCap, maxCap, 100*time.Millisecond, time.Second, 10*time.Second,
		"1", "localhost", quicpool.StaticAddr(addr), opts...)
	go p.ClientManager()
	t.Cleanup(p.Close)
	require.NoError(t, p.WaitReady(waitCtx(t), minCap))
	return p
}

// tunnel takes a stream on the server (any) and the same stream on the client (by ID), and
// moves payload both ways. The caller closes both ends.
func tunnel(t testing.TB, server, client *quicpool.Pool, payload []byte) (serverConn, clientConn net.Conn) {
	t.Helper()
	id, sc, err := server.IncomingGet(5 * time.Second)
	require.NoError(t, err)
	cc, err := client.OutgoingGet(id, 5*time.Second)
	require.NoError(t, err)
	for _, dir := range [][2]net.Conn{{sc, cc}, {cc, sc}} {
		errc := make(chan error, 1)
		go func() { _, err := dir[0].Write(payload); errc <- err }()
		got := make([]byte, len(payload))
		_, err := io.ReadFull(dir[1], got)
		require.NoError(t, err)
		require.NoError(t, <-errc)
		require.Equal(t, payload, got)
	}
	return sc, cc
}

// waitFor polls a pool's Stats until cond holds, failing after waitBound.
func waitFor(t testing.TB, p *quicpool.Pool, what string, cond func(messages.Stats) bool) messages.Stats {
	t.Helper()
	deadline := time.Now().Add(waitBound)
	for {
		s := p.Stats()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; state: %+v", what, s)
		}
		time.Sleep(2 * time.Millisecond) // polling interval; the wait is bounded by the deadline
	}
}

// series gathers g and returns every sample by its name and labels, as
// name{label="value",...} with the labels sorted: a histogram gives name_bucket{...,le="..."},
// name_count and name_sum.
func series(t testing.TB, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	families, err := g.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch mf.GetType() {
			case dto.MetricType_GAUGE:
				out[key(mf.GetName(), labels)] = m.GetGauge().GetValue()
			case dto.MetricType_COUNTER:
				out[key(mf.GetName(), labels)] = m.GetCounter().GetValue()
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				out[key(mf.GetName()+"_count", labels)] = float64(h.GetSampleCount())
				out[key(mf.GetName()+"_sum", labels)] = h.GetSampleSum()
				for _, b := range h.GetBucket() {
					out[key(mf.GetName()+"_bucket", with(labels, "le", fmt.Sprint(b.GetUpperBound())))] = float64(b.GetCumulativeCount())
				}
			default:
				t.Fatalf("%s: unexpected type %v", mf.GetName(), mf.GetType())
			}
		}
	}
	return out
}

// key is a sample's name and labels as series returns them.
func key(name string, labels map[string]string) string {
	var parts []string
	for k, v := range labels {
		parts = append(parts, fmt.Sprintf("%s=%q", k, v))
	}
	sort.Strings(parts)
	return name + "{" + strings.Join(parts, ",") + "}"
}

func with(labels map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for lk, lv := range labels {
		out[lk] = lv
	}
	return out
}
