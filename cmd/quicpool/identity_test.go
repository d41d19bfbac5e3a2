package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The server's identity is made once in its state directory, private to its owner, and the same
// at every later start; servers starting at once on an empty directory agree on one.
func TestLoadIdentity(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	var wg sync.WaitGroup
	fps := make([]string, 4)
	made := make([]bool, 4)
	for i := range fps {
		wg.Go(func() {
			cert, path, created, err := loadIdentity(dir)
			if err != nil {
				t.Errorf("loadIdentity: %v", err)
				return
			}
			if path != filepath.Join(dir, identityFile) {
				t.Errorf("path %s", path)
			}
			fps[i], made[i] = fingerprint(cert.Certificate[0]), created
		})
	}
	wg.Wait()
	for i := range fps {
		if fps[i] != fps[0] {
			t.Fatalf("concurrent starts disagree: %s and %s", fps[0], fps[i])
		}
	}
	cert, _, created, err := loadIdentity(dir)
	if err != nil || created || fingerprint(cert.Certificate[0]) != fps[0] {
		t.Fatalf("reload: created %v, %v; want the same certificate", created, err)
	}
	if !made[0] && !made[1] && !made[2] && !made[3] {
		t.Error("no start said it created the certificate")
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, identityFile): 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, %v; want %v", path, fi.Mode().Perm(), err, want)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".server-*")); len(left) > 0 {
		t.Errorf("temporary files left: %q", left)
	}

	if err := os.WriteFile(filepath.Join(dir, identityFile), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, path, _, err := loadIdentity(dir)
	if err == nil || !strings.Contains(err.Error(), "changes the fingerprint") || !strings.Contains(err.Error(), path) {
		t.Errorf("a damaged identity file: %v, want an error that names it and warns before replacing it", err)
	}

	notDir := filepath.Join(dir, identityFile) // -state given a file
	if _, _, _, err := loadIdentity(notDir); err == nil || !strings.Contains(err.Error(), "not a directory") ||
		strings.Contains(err.Error(), "remove the file") {
		t.Errorf("a state directory that is a file: %v, want why, and no advice to remove anything", err)
	}
}

func TestDefaultStateDir(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "/var/lib/quicpool:/other")
	if got := defaultStateDir(); got != "/var/lib/quicpool" {
		t.Errorf("with STATE_DIRECTORY: %s", got)
	}
	t.Setenv("STATE_DIRECTORY", "")
	t.Setenv("XDG_STATE_HOME", "/xdg")
	if got := defaultStateDir(); got != "/xdg/quicpool" {
		t.Errorf("with XDG_STATE_HOME: %s", got)
	}
	t.Setenv("XDG_STATE_HOME", "")
	t.Setenv("HOME", "/home/me")
	if got := defaultStateDir(); got != "/home/me/.local/state/quicpool" {
		t.Errorf("with HOME: %s", got)
	}
}

// testCAs holds the CAs writeCA made, by name, for writeLeaf.
var testCAs sync.Map // name -> tls.Certificate

// writeCA makes a CA certificate, writes it to dir/name.pem and returns the path.
func writeCA(t *testing.T, dir, name string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA " + name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	testCAs.Store(dir+"/"+name, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key})
	path := filepath.Join(dir, name+".pem")
	writePEM(t, path, "CERTIFICATE", der)
	return path
}

// writeLeaf makes a server certificate for localhost and 127.0.0.1 signed by the CA writeCA
// made as name, and writes it and its key to certFile and keyFile.
func writeLeaf(t *testing.T, dir, name, certFile, keyFile string) {
	t.Helper()
	v, _ := testCAs.Load(dir + "/" + name)
	ca := v.(tls.Certificate)
	caCert, err := x509.ParseCertificate(ca.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, ca.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", keyDER)
}

func writePEM(t *testing.T, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
