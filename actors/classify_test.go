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
