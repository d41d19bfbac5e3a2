package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// identityFile is the name of the file in the server's state directory that holds its
// certificate and private key (PEM, mode 0600). Its certificate's SHA-256 is the fingerprint
// clients pin: keep the file, keep the fingerprint.
const identityFile = "server.pem"

// identityValidity is how long a generated server certificate is valid. A client that pins the
// fingerprint does not check the dates; a long validity keeps the certificate usable elsewhere.
const identityValidity = 10 * 365 * 24 * time.Hour

// newCertificate returns a fresh self-signed ECDSA P-256 certificate for localhost, 127.0.0.1
// and ::1, valid for validFor.
func newCertificate(validFor time.Duration) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "quicpool server"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validFor),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// selfSigned returns a server TLS config holding a fresh self-signed certificate valid for a
// day, and the certificate's DER bytes, for the demo. Nothing is written to disk.
func selfSigned() (*tls.Config, []byte, error) {
	cert, err := newCertificate(24 * time.Hour)
	if err != nil {
		return nil, nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}, cert.Certificate[0], nil
}

// defaultStateDir is where the server keeps its identity unless -state says otherwise:
// $STATE_DIRECTORY (set by systemd's StateDirectory=), else $XDG_STATE_HOME/quicpool, else
// ~/.local/state/quicpool. "" if none can be found.
func defaultStateDir() string {
	if d := os.Getenv("STATE_DIRECTORY"); d != "" {
		return strings.Split(d, ":")[0]
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "quicpool")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "quicpool")
	}
	return ""
}

// loadIdentity returns the server certificate kept in dir, creating dir (mode 0700) and the
// certificate if there is none yet; created reports that it did. Two servers starting at once
// on an empty dir end up with the same certificate: the file appears in one step.
func loadIdentity(dir string) (cert tls.Certificate, path string, created bool, err error) {
	path = filepath.Join(dir, identityFile)
	if cert, err = tls.LoadX509KeyPair(path, path); err == nil {
		return cert, path, false, nil
	}
	var unreadable *fs.PathError // the error names the path
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case errors.As(err, &unreadable):
		return cert, path, false, fmt.Errorf("reading the server identity: %w", err)
	default: // the file is there but holds no certificate and key
		return cert, path, false, fmt.Errorf("reading the server identity %s: %w (remove the file to make a new one, which changes the fingerprint)", path, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return cert, path, false, fmt.Errorf("state directory: %w", err)
	}
	if err := createIdentity(dir, path); err != nil {
		return cert, path, false, fmt.Errorf("creating the server identity: %w", err)
	}
	cert, err = tls.LoadX509KeyPair(path, path)
	return cert, path, err == nil, err
}

// createIdentity writes a new certificate and its key to path, unless path exists: the file is
// written under a temporary name and linked to path, which fails if another process was first.
func createIdentity(dir, path string) error {
	cert, err := newCertificate(identityValidity)
	if err != nil {
		return err
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".server-*.pem") // mode 0600
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	err = errors.Join(
		pem.Encode(tmp, &pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}),
		pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: key}),
		tmp.Sync(),
		tmp.Close(),
	)
	if err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

// loadCA returns the certificates of a PEM file as a pool of roots.
func loadCA(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}
