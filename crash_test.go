package quicpool_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quic-go/quic-go"
	"github.com/quicpool/quicpool"
	"github.com/quicpool/quicpool/messages"
	"github.com/stretchr/testify/require"
)

// childServerEnv makes the test binary run a server pool instead of the tests: the crash tests
// start it again as a process they can kill -9. Its value is "addr|certFile|keyFile".
const childServerEnv = "QUICPOOL_TEST_CHILD_SERVER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childServerEnv); spec != "" {
		runChildServer(spec)
		return
	}
	os.Exit(m.Run())
}

// runChildServer runs a server pool until the process is killed, and prints "listening ADDR".
func runChildServer(spec string) {
	parts := strings.Split(spec, "|")
	cert, err := tls.LoadX509KeyPair(parts[1], parts[2])
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	server, err := quicpool.NewServer(parts[0], &tls.Config{Certificates: []tls.Certificate{cert}},
		quicpool.WithCapacity(1, 8), quicpool.WithKeepAlive(time.Second))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	fmt.Println("listening", server.Addr())
	select {} // until killed
}

// writeCert writes a fresh self-signed certificate and its key as PEM files.
func writeCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	cert := selfSigned(t).Certificates[0]
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
	return certFile, keyFile
}

// startChildServer starts the test binary as a server pool on addr and waits until it listens.
func startChildServer(t *testing.T, addr, certFile, keyFile string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childServerEnv+"="+addr+"|"+certFile+"|"+keyFile)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- s
	}()
	select {
	case l := <-line:
		require.True(t, strings.HasPrefix(l, "listening "), "child server: %q", l)
	case <-waitCtx(t).Done():
		t.Fatal("the child server did not start")
	}
	return cmd
}

// A server process killed with SIGKILL and restarted with the same certificate resets the
// connections of its previous process on their first packet (its stateless reset key is derived
// from the certificate's key): the client learns of the crash from a stateless reset, not from
// its idle timeout, and reconnects to the new process.
func TestRestartedServerResetsOldConnections(t *testing.T) {
	certFile, keyFile := writeCert(t)
	addr := deadAddr(t)
	first := startChildServer(t, addr, certFile, keyFile)

	engine, err := actor.NewEngine(actor.NewEngineConfig())
	require.NoError(t, err)
	events := subscribe(t, engine)
	// Keep-alive 1s: the client's next packet goes out within a second of the restart, while its
	// idle timeout (3s) is far off, so only a stateless reset can end the connection that soon.
	client, err := quicpool.NewClient(addr, quicpool.WithTLSConfig(&tls.Config{InsecureSkipVerify: true}),
		quicpool.WithCapacity(2, 2), quicpool.WithKeepAlive(time.Second), quicpool.WithEngine(engine))
	require.NoError(t, err)
	defer client.Close()
	require.NoError(t, client.WaitReady(waitCtx(t), 2))

	require.NoError(t, first.Process.Kill())
	_ = first.Wait()
	startChildServer(t, addr, certFile, keyFile)
	restarted := time.Now()

	ev := waitEvent(t, events, messages.EventShardFailed)
	var reset *quic.StatelessResetError
	require.ErrorAs(t, ev.Err, &reset, "the restarted server reset the old connection")
	t.Logf("old connection reset %v after the restart", ev.Time.Sub(restarted).Round(time.Millisecond))
	require.NoError(t, client.WaitReady(waitCtx(t), 2), "the client is back, on the new process")
}
