// Package actors holds the actors of a quicpool pool. It exports nothing an embedder needs:
// build a pool with quicpool.NewClient or quicpool.NewServer (WithEngine or WithParent puts its
// actors in your actor system) and talk to it with the requests of package messages, sent to
// Pool.Coordinator.
//
// One pool is a coordinator, a supervisor and one shard per QUIC connection. Each fact has one
// owner; the others learn it by message:
//
//	coordinator   the idle streams themselves, their IDs and order; the callers waiting for them;
//	              the load of each connection that is up; the pool's condition (why it cannot
//	              serve) and counters; (client) capacity and interval tuning; (server) ID issuance,
//	              fair shares and the handshaken streams held for lack of room
//	supervisor    the shard slots: which actor holds each; (client) each slot's restart history
//	              and backoff; (server) the listener, which client holds each slot, and each
//	              connection's stream credit (admission.go)
//	shard         its QUIC connection, and the goroutines that dial or accept it and open or
//	              handshake its streams
//
// The coordinator runs on a goroutine of its own for the life of its actor (coordinator.run),
// and handles there, one at a time, what reaches it on two channels: the facade's takes
// (core.Config.Takes), and everything told to it (core.Config.Tell) by the pool's own actors,
// goroutines and timers, by the facade's other calls, and by its own Receive, which hands on what
// hollywood delivers to its actor (an embedder's requests). A handshaken stream goes from the
// goroutine that made it straight to the coordinator, which hands it to a caller in the same
// step: one message from a waiting Get to its stream.
//
// Actors never block in Receive on I/O or on one another: dialing, accepting, opening and reading
// handshakes run in goroutines that report back by message. (The server's coordinator writes each
// stream's 4-byte ID with quic-go's non-blocking TryWriteAll.) Telling the coordinator waits only
// while its goroutine, which never blocks, is 256 messages behind. A panic in Receive is
// recovered by the receiver every actor runs in (sealed), and one in the coordinator's goroutine
// by that goroutine, and logged; a shard reports it as its failure (onPanic), the coordinator and
// the supervisor go on with their next message. It never reaches hollywood's restart logic. The
// protocol between the actors is made of unexported types (protocol.go), so no code outside this
// package can inject a message of it.
package actors
