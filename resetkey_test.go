package quicpool

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"testing"

	"github.com/stretchr/testify/require"
)

// The derived stateless reset key depends on the certificate's private key only: the same key
// after a restart, another key for another certificate, none without a static certificate.
func TestResetKeyFollowsTheCertificate(t *testing.T) {
	withKey := func() *tls.Config {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		return &tls.Config{Certificates: []tls.Certificate{{PrivateKey: key}}}
	}
	a, b := withKey(), withKey()
	require.NotNil(t, deriveResetKey(a))
	require.Equal(t, deriveResetKey(a), deriveResetKey(a.Clone()))
	require.NotEqual(t, deriveResetKey(a), deriveResetKey(b))
	require.Nil(t, deriveResetKey(&tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return nil, nil }}))
}
