// Package quicpool keeps a pool of ready QUIC streams between two hosts, so that a tunnel, a
// proxy or an RPC layer gets a stream at once instead of paying for a stream open and a handshake
// on its hot path.
//
// # Two sides, one stream
//
// A client pool dials the server and opens streams ahead of need; a server pool accepts them and
// labels each with an ID. Either side takes streams: Accept (IncomingGet) hands out any idle
// stream with its ID; Get (OutgoingGet) hands out the stream with a given ID. A typical tunnel
// takes a stream on one side, passes its ID over its own control channel, and takes the same
// stream by ID on the other side:
//
//	server, err := quicpool.NewServer("0.0.0.0:4433", tlsConfig)
//	client, err := quicpool.NewClient("tunnel.example.com:4433")
//
//	conn, err := server.Accept(ctx)         // any idle stream; conn.ID() names it
//	peer, err := client.Get(ctx, conn.ID()) // the same stream, on the client
//
// Every stream is a net.Conn (a *StreamConn). Its Close releases both directions, so a caller
// that closes without reading to EOF never leaks the peer's stream credit.
//
// # NodePass compatibility
//
// quicpool speaks the wire protocol of github.com/NodePassProject/quic v1.1.1 (ALPN "np-quic", a
// 0x00 handshake byte, a 4-byte ID answered by the server, the control stream "00000000") and
// keeps its API: NewClientPool, NewServerPool, ClientManager, ServerManager, OutgoingGet,
// IncomingGet, Flush, Close, Ready, Active, Capacity, Interval, AddError, ErrorCount,
// ResetError. A NodePass user switches by changing the import.
//
// # Self-healing
//
// The pool is a small hollywood actor system (package actors), in which each fact has one owner.
// A coordinator owns the idle streams themselves, the callers waiting for them and the pool's
// condition; a handshaken stream goes straight to it from the goroutine that made it, and to a
// waiting caller in the same step. One shard actor per QUIC connection owns that connection and
// the goroutines that dial or accept it and open or handshake its streams. A supervisor owns the
// shard slots: on a client it replaces a shard whose connection died with the backoff and
// intensity limit of a RestartPolicy; on a server the slot waits for a client's next connection.
// Either way it tells the coordinator, which forgets that connection's idle streams at once.
// Close waits for every actor and goroutine of the pool.
//
// While a client pool has no connection up, calls wait within their timeout as it retries; they
// fail at once with ErrUnavailable when the failure is permanent (a certificate that does not
// verify, an ALPN the server does not speak, an unusable address) or when one connection restarts
// more often than the RestartPolicy allows. Err says why the pool cannot serve, and clears when a
// connection comes up.
//
// # Errors
//
// Every error of Get, Accept, OutgoingGet, IncomingGet and WaitReady is an *OpError (a
// net.Error) wrapping one of the Err values of this package (or, for a call whose context was
// cancelled, the context's error alone), and often the cause of a failure too; test with
// errors.Is and errors.As. Err returns the pool's condition itself (one of those values, with
// its cause if it has one), not an *OpError. Every timeout satisfies errors.Is(err, ErrTimeout).
// While a client's connections fail and none is up, a call's error (a timeout, or a failure at
// once) wraps ErrUnavailable and the connection failure, which errors.As finds: a
// *tls.CertificateVerificationError, a *quic.IdleTimeoutError, ... A listening server's timeout
// is a bare ErrTimeout. An invalid constructor argument or option is ErrInvalidConfig.
//
// # Embedding
//
// With WithEngine or WithParent the pool's actors live in the caller's actor system. An actor
// of that system can talk to the pool directly: it sends the requests of package messages (Get,
// State, WaitReady, Flush, AddError, ResetError) to Pool.Coordinator, those that expect an
// answer with a reply channel of capacity one; it waits for the reply in a goroutine with a
// bound of its own (never in Receive), and wraps a stream it receives with NewStreamConn. The
// pool never blocks on a reply channel: an answer that does not fit is dropped and counted in
// Stats.Dropped. Anything else sent to the coordinator is ignored.
package quicpool
