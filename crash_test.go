package quicpool_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
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
	if spec := os.Getenv(childHeldEnv); spec != "" {
		runHeldChild(spec)
		return
	}
	os.Exit(m.Run())
}

// runChildServer waits for a line on stdin, then runs a server pool until the process is killed,
// and prints "listening ADDR" once it listens.
func runChildServer(spec string) {
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		os.Exit(2)
	}
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
	for { // echo on every stream, until killed
		_, c, err := server.IncomingGet(time.Hour)
		if err != nil {
			continue
		}
		go func() {
			defer c.Close()
			_, _ = io.Copy(c, c)
		}()
	}
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
	cmd, listen := prepareChildServer(t, addr, certFile, keyFile)
	listen()
	return cmd
}

// prepareChildServer starts the test binary as a server pool on addr that listens only when
// listen is called; listen returns once it does. A test that restarts a server starts the next
// process ahead, so the restart takes milliseconds whatever starting a process costs on a loaded
// machine.
func prepareChildServer(t *testing.T, addr, certFile, keyFile string) (cmd *exec.Cmd, listen func()) {
	t.Helper()
	cmd = exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childServerEnv+"="+addr+"|"+certFile+"|"+keyFile)
	in, err := cmd.StdinPipe()
	require.NoError(t, err)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, func() {
		t.Helper()
		line := make(chan string, 1)
		go func() {
			s, _ := bufio.NewReader(out).ReadString('\n')
			line <- s
		}()
		_, err := io.WriteString(in, "listen\n")
		require.NoError(t, err)
		select {
		case l := <-line:
			require.True(t, strings.HasPrefix(l, "listening "), "child server: %q", l)
		case <-waitCtx(t).Done():
			t.Fatal("the child server did not start")
		}
	}
}

// A server process killed with SIGKILL and restarted with the same certificate resets the
// connections of its previous process (its stateless reset key is derived from the certificate's
// key): the client learns of the crash from a stateless reset, not from its idle timeout, and
// reconnects to the new process. quic-go answers only a packet longer than a stateless reset
// could be (42 bytes), which a keep-alive PING alone is not, so the test writes on a stream of the
// old connection after the restart, as a busy client would.
func TestRestartedServerResetsOldConnections(t *testing.T) {
	certFile, keyFile := writeCert(t)
	addr := deadAddr(t)
	first := startChildServer(t, addr, certFile, keyFile)

	engine, err := actor.NewEngine(actor.NewEngineConfig())
	require.NoError(t, err)
	events := subscribe(t, engine)
	// Keep-alive 1s: the idle timeout (3s) is far off, so only a stateless reset can end the old
	// connection that soon. The client's path counts the Retry packets the servers send.
	path := newRelay(t, addr)
	client, err := quicpool.NewClient(path.Addr(), quicpool.WithTLSConfig(&tls.Config{InsecureSkipVerify: true}),
		quicpool.WithCapacity(2, 2), quicpool.WithKeepAlive(time.Second), quicpool.WithEngine(engine))
	require.NoError(t, err)
	defer client.Close()
	require.NoError(t, client.WaitReady(waitCtx(t), 2))
	retried := path.retries.Load()
	require.Positive(t, retried, "the first dial verified its address")

	// The next process is started ahead and listens right after the kill: the restart is over
	// long before the old connection's silence (1s) would make the client dial a standby, which
	// would replace the old connection rather than let it be reset.
	_, listen := prepareChildServer(t, addr, certFile, keyFile)
	require.NoError(t, first.Process.Kill())
	_ = first.Wait()
	listen()
	restarted := time.Now()

	_, c, err := client.IncomingGet(time.Second)
	require.NoError(t, err, "a stream of the old connection")
	defer c.Close()
	_, _ = c.Write(kib) // its first packet reaches the new process, which answers with a reset

	ev := waitEvent(t, events, messages.EventShardFailed)
	var reset *quic.StatelessResetError
	require.ErrorAs(t, ev.Err, &reset, "the restarted server reset the old connection")
	t.Logf("old connection reset %v after the restart", ev.Time.Sub(restarted).Round(time.Millisecond))
	require.NoError(t, client.WaitReady(waitCtx(t), 2), "the client is back, on the new process")
	require.Equal(t, retried, path.retries.Load(),
		"the new process takes the token the old one handed out (a key derived from the certificate): no Retry")
}

// echoOp takes any idle stream of the client, writes 1 KiB, and reads it back from the child
// server's echo, all within timeout.
func echoOp(client *quicpool.Pool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	_, c, err := client.IncomingGet(timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(deadline)
	if _, err := c.Write(kib); err != nil {
		return err
	}
	got := make([]byte, len(kib))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !bytes.Equal(got, kib) {
		return errors.New("echo differs")
	}
	return nil
}

// The server process is killed with SIGKILL and restarted a second later with the same
// certificate: the client serves within a second of the restart, and no operation started after
// the restart waits out its timeout on a stream of the dead connection (the connection is
// suspect before the restart, or the stateless reset ends it on its first data packet).
func TestClientServesSoonAfterServerCrash(t *testing.T) {
	certFile, keyFile := writeCert(t)
	addr := deadAddr(t)
	first := startChildServer(t, addr, certFile, keyFile)
	client, err := quicpool.NewClient(addr, quicpool.WithTLSConfig(&tls.Config{InsecureSkipVerify: true}),
		quicpool.WithCapacity(4, 4))
	require.NoError(t, err)
	defer client.Close()
	require.NoError(t, client.WaitReady(waitCtx(t), 4))
	require.NoError(t, echoOp(client, 5*time.Second))

	_, listen := prepareChildServer(t, addr, certFile, keyFile)
	require.NoError(t, first.Process.Kill())
	_ = first.Wait()
	time.Sleep(time.Second) // the server is down for a second: that is the scenario
	listen()
	restarted := time.Now()

	const timeout = 2 * time.Second
	for attempt := 1; ; attempt++ {
		start := time.Now()
		err := echoOp(client, timeout)
		if err == nil {
			break
		}
		var ne net.Error
		require.False(t, errors.As(err, &ne) && ne.Timeout(), "op %d started %v after the restart waited out its timeout: %v",
			attempt, start.Sub(restarted).Round(time.Millisecond), err)
		require.Less(t, time.Since(restarted), 10*time.Second, "the client never served again: %v", err)
	}
	served := time.Since(restarted)
	t.Logf("served %v after the restart", served.Round(time.Millisecond))
	require.Less(t, served, time.Second)
}
