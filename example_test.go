package quicpool_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math/big"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/quicpool/quicpool"
	"github.com/quicpool/quicpool/messages"
)

// exampleCert returns a server TLS config with a fresh self-signed certificate.
func exampleCert() *tls.Config {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// A tunnel round trip: the server takes any idle stream, the client takes the same stream by ID.
func Example() {
	server, err := quicpool.NewServer("127.0.0.1:0", exampleCert())
	if err != nil {
		panic(err)
	}
	defer server.Close()
	// The certificate is self-signed: skip verification for the example only.
	client, err := quicpool.NewClient(server.Addr(), quicpool.WithTLSConfig(&tls.Config{InsecureSkipVerify: true}))
	if err != nil {
		panic(err)
	}
	defer client.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	serverConn, err := server.Accept(ctx) // any idle stream
	if err != nil {
		panic(err)
	}
	defer serverConn.Close()
	// In a real tunnel the ID travels over the application's own control channel.
	clientConn, err := client.Get(ctx, serverConn.ID())
	if err != nil {
		panic(err)
	}
	defer clientConn.Close()

	go serverConn.Write([]byte("hello through the pool"))
	buf := make([]byte, 22)
	io.ReadFull(clientConn, buf)
	fmt.Println(string(buf))
	// Output: hello through the pool
}

// A client pool with its options; WaitReady replaces the sleep other pools need after starting.
func ExampleNewClient() {
	server, _ := quicpool.NewServer("127.0.0.1:0", exampleCert(), quicpool.WithCapacity(1, 64))
	defer server.Close()

	client, err := quicpool.NewClient(server.Addr(),
		quicpool.WithCapacity(16, 64),                            // keep 16..64 idle streams
		quicpool.WithInterval(100*time.Millisecond, time.Second), // refill tuning
		quicpool.WithKeepAlive(5*time.Second),
		quicpool.WithTLSConfig(&tls.Config{InsecureSkipVerify: true}), // example only
	)
	if err != nil {
		panic(err)
	}
	defer client.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := client.WaitReady(ctx, 16); err != nil {
		panic(err)
	}
	fmt.Println("ready:", client.Ready(), "shards:", client.ShardCount())
	// Output: ready: true shards: 1
}

// A server pool reports a listen failure as its error, like net.Listen.
func ExampleNewServer() {
	first, _ := quicpool.NewServer("127.0.0.1:0", exampleCert())
	defer first.Close()

	_, err := quicpool.NewServer(first.Addr(), exampleCert())
	fmt.Println(err != nil)
	// Output: true
}

// Migrating from NodePass: the same constructors and calls, with the import changed. Both sides
// take the control stream 00000000 by ID, as NodePass does.
func Example_migration() {
	server := quicpool.NewServerPool(64, "", exampleCert(), "127.0.0.1:0", 10*time.Second)
	go server.ServerManager()
	defer server.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	server.WaitReady(ctx, 0) // NodePass programs sleep here instead

	client := quicpool.NewClientPool(8, 64, 100*time.Millisecond, time.Second, 10*time.Second,
		"1", "localhost", quicpool.StaticAddr(server.Addr()))
	go client.ClientManager()
	defer client.Close()

	serverCtl, err := server.OutgoingGet(quicpool.ControlID, 5*time.Second)
	if err != nil {
		panic(err)
	}
	clientCtl, err := client.OutgoingGet(quicpool.ControlID, 5*time.Second)
	if err != nil {
		panic(err)
	}
	go clientCtl.Write([]byte("control"))
	buf := make([]byte, 7)
	io.ReadFull(serverCtl, buf)
	fmt.Println(string(buf))
	// Output: control
}

// Embedding: an actor of your system owns the pool (WithParent) and takes streams by message.
// It never blocks in Receive: a goroutine waits for the reply, with a bound of its own, and
// sends it back to the actor as a message.
func Example_embedding() {
	server, _ := quicpool.NewServer("127.0.0.1:0", exampleCert())
	defer server.Close()
	engine, _ := actor.NewEngine(actor.NewEngineConfig())

	pools := make(chan *quicpool.Pool, 1) // hands the pool to main, to close it at the end
	got := make(chan string, 1)
	var pool *quicpool.Pool // touched only by the actor
	tunnel := engine.SpawnFunc(func(c *actor.Context) {
		switch m := c.Message().(type) {
		case actor.Started:
			// The pool's actors become this actor's children and stop with it.
			var err error
			pool, err = quicpool.NewClient(server.Addr(), quicpool.WithParent(c),
				quicpool.WithTLSConfig(&tls.Config{InsecureSkipVerify: true})) // example only
			if err != nil {
				got <- err.Error()
				return
			}
			pools <- pool
		case string: // "open": ask the pool for any idle stream
			if pool == nil {
				return
			}
			deadline := time.Now().Add(5 * time.Second)
			reply := make(chan messages.Stream, 1) // capacity one, one request
			c.Send(pool.Coordinator(), messages.Get{Deadline: deadline, Reply: reply})
			self, e := c.PID(), c.Engine()
			go func() { // wait outside Receive, bounded: the pool drops the request at its deadline
				timer := time.NewTimer(time.Until(deadline))
				defer timer.Stop()
				select {
				case s := <-reply:
					e.Send(self, s)
				case <-timer.C:
					if s, ok := messages.Abandon(reply); ok { // it arrived as we gave up: ours
						e.Send(self, s)
						return
					}
					e.Send(self, messages.Stream{Err: quicpool.ErrTimeout})
				}
			}()
		case messages.Stream:
			if m.Err != nil {
				got <- m.Err.Error()
				return
			}
			conn := quicpool.NewStreamConn(m)
			got <- fmt.Sprint("stream ", len(conn.ID()) == 8)
			conn.Close()
		case actor.Stopped: // also before a restart, if Receive panicked: Started then makes a new pool
			if pool != nil {
				// After a stop the pool's actors have stopped with this one and Close returns at
				// once; before a restart hollywood leaves them running, and Close stops them.
				pool.Close()
			}
		}
	}, "tunnel")

	engine.Send(tunnel, "open")
	select {
	case s := <-got:
		fmt.Println(s)
	case <-time.After(10 * time.Second):
		fmt.Println("no answer")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	<-engine.PoisonCtx(ctx, tunnel).Done() // stops the pool's actors with it
	select {
	case p := <-pools:
		p.Close() // the actors are stopped; Close waits for the pool's last goroutines
	default:
	}
	// Output: stream true
}

// The restart policy's backoff, without jitter.
func ExampleRestartPolicy_Backoff() {
	p := quicpool.RestartPolicy{Jitter: -1}
	for attempt := 1; attempt <= 7; attempt++ {
		fmt.Print(p.Backoff(attempt), " ")
	}
	fmt.Println()
	// Output: 100ms 200ms 400ms 800ms 1.6s 3.2s 5s
}
