package actors

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool/internal/core"
	"github.com/quicpool/quicpool/internal/wire"
)

// tlsAlertNoApplicationProtocol is the TLS alert a server sends when it speaks none of the
// client's ALPN protocols.
const tlsAlertNoApplicationProtocol = 120

// permanent reports whether a connection failure cannot be fixed by retrying with the same
// configuration, and says why in words for the log. Every TLS handshake failure is permanent: a
// certificate that does not verify, a hostname that does not match, an ALPN the server does not
// speak, an address that does not parse. A refused or timed-out dial, a lost connection or a full server are temporary.
func permanent(err error) (reason string, permanent bool) {
	var verify *tls.CertificateVerificationError
	if errors.As(err, &verify) {
		return fmt.Sprintf("the server's certificate does not verify (%v); fix the TLS code, hostname or certificate", verify.Err), true
	}
	var addr *net.AddrError
	if errors.As(err, &addr) {
		return fmt.Sprintf("the server address is not usable (%v); fix the resolver", addr), true
	}
	var te *quic.TransportError
	if errors.As(err, &te) && te.ErrorCode.IsCryptoError() {
		alert := uint8(te.ErrorCode - 0x100)
		if alert == tlsAlertNoApplicationProtocol {
			return "the peer does not speak ALPN \"np-quic\": it is not a quicpool or NodePass pool", true
		}
		return fmt.Sprintf("TLS handshake failed (alert %d): %v", alert, err), true
	}
	return "", false
}

// refusedBy wraps the end of a client connection the server refused with the sentinel that says
// why: ErrPoolFull (no free slot, or the client's address holds all the connections it may) or
// ErrUnauthorized (its address is not allowed, found when it moved). A quicpool server tells both
// with ConnCodeRefused and its error's text. An address refused before the handshake sees
// CONNECTION_REFUSED, which quic-go also sends when its accept queue overflows, so that stays a
// plain transport error. Any other error is returned as it is.
func refusedBy(err error) error {
	var app *quic.ApplicationError
	if !errors.As(err, &app) || !app.Remote || app.ErrorCode != wire.ConnCodeRefused {
		return err
	}
	for _, why := range []error{core.ErrPoolFull, core.ErrUnauthorized} {
		if strings.Contains(app.ErrorMessage, why.Error()) {
			return core.Also(why, err) // the server's reason already says it
		}
	}
	return err
}
