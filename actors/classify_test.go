package actors

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool/internal/core"
	"github.com/quicpool/quicpool/internal/wire"
	"github.com/stretchr/testify/assert"
)

func TestPermanent(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"certificate", fmt.Errorf("dialing: %w", &quic.TransportError{ErrorCode: 0x12a,
			ErrorMessage: "x", Remote: false}), true},
		{"verification", fmt.Errorf("dialing: %w", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), true},
		{"alpn", &quic.TransportError{ErrorCode: 0x100 + tlsAlertNoApplicationProtocol, Remote: true}, true},
		{"refused", &quic.TransportError{ErrorCode: quic.ConnectionRefused, Remote: true}, false},
		{"idle timeout", &quic.IdleTimeoutError{}, false},
		{"handshake timeout", &quic.HandshakeTimeoutError{}, false},
		{"pool full", &quic.ApplicationError{ErrorCode: wire.ConnCodeRefused, Remote: true}, false},
		{"canceled", context.Canceled, false},
		{"other", errors.New("boom"), false},
		{"bad address", fmt.Errorf("resolving: %w", &net.AddrError{Err: "missing port in address", Addr: "x"}), true},
		{"dns", &net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reason, got := permanent(c.err)
			assert.Equal(t, c.want, got)
			assert.Equal(t, c.want, reason != "")
		})
	}
}

// A quicpool server's refusals become the sentinels that say why; every other error is kept as
// it is.
func TestRefusedBy(t *testing.T) {
	full := &quic.ApplicationError{ErrorCode: wire.ConnCodeRefused, Remote: true,
		ErrorMessage: "quicpool: pool full: 127.0.0.1 holds all the connections one address may hold (1)"}
	got := refusedBy(fmt.Errorf("dialing: %w", full))
	assert.ErrorIs(t, got, core.ErrPoolFull)
	assert.ErrorAs(t, got, new(*quic.ApplicationError), "the cause stays reachable")

	moved := &quic.ApplicationError{ErrorCode: wire.ConnCodeRefused, Remote: true,
		ErrorMessage: "connection moved to 10.0.0.9:4000: quicpool: client address not allowed: 10.0.0.9:4000"}
	assert.ErrorIs(t, refusedBy(moved), core.ErrUnauthorized)

	for name, err := range map[string]error{
		"our own close":        &quic.ApplicationError{ErrorCode: wire.ConnCodeRefused, Remote: false, ErrorMessage: "quicpool: pool full"},
		"another code":         &quic.ApplicationError{ErrorCode: wire.ConnCodeViolation, Remote: true, ErrorMessage: "quicpool: pool full"},
		"connection refused":   &quic.TransportError{ErrorCode: quic.ConnectionRefused, Remote: true},
		"idle timeout":         &quic.IdleTimeoutError{},
		"refused, other cause": &quic.ApplicationError{ErrorCode: wire.ConnCodeRefused, Remote: true, ErrorMessage: "shutting down"},
	} {
		assert.Same(t, err, refusedBy(err), name)
	}
}
