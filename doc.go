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
// The pool is a small hollywood actor system (package actors): a coordinator owns the idle
// stream IDs and the waiting callers; one shard actor per QUIC connection owns the connection
// and its streams; a supervisor replaces a shard whose connection died, with the backoff and
// intensity limit of a RestartPolicy. Streams of a dead connection are purged the moment it dies.
// Close waits for every actor and goroutine of the pool.
//
// # Errors
//
// Every error a Pool method returns is an *OpError (a net.Error) wrapping one of the Err values
// of this package, or the cause of a failure; test them with errors.Is and errors.As.
//
// # Embedding
//
// With WithEngine or WithParent the pool's actors live in the caller's actor system, and its
// actors can talk to the pool directly with the messages of package messages, sent to
// Pool.Coordinator.
package quicpool
