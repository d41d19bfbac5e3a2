// Command quicpool runs a TCP-over-QUIC forward tunnel through a quicpool pool, and a demo.
//
//	quicpool server [flags]  accept clients' pools and forward each of their tunnels to a TCP
//	                         target
//	quicpool client [flags]  accept TCP connections on a local port and carry each through a
//	                         pool stream to the server, which forwards it to its target
//	quicpool demo [flags]    run a server pool and a client pool in one process and measure
//	                         echo round trips through them
//
// Forward port 9000 of the client machine to a web server on the server machine's port 8080:
//
//	server$ quicpool server -target 127.0.0.1:8080
//	quicpool server: listening on [::]:4433, forwarding to 127.0.0.1:8080, fingerprint 3a7f...
//	quicpool server: new certificate saved to /home/me/.local/state/quicpool/server.pem: keep this file to keep the fingerprint
//	quicpool server: on the client machine run:
//	  quicpool client -server server.example:4433 -fingerprint 3a7f...
//	client$ quicpool client -server server.example:4433 -fingerprint 3a7f...
//	client$ curl http://127.0.0.1:9000/
//
// Identity. The server keeps its certificate and key in server.pem in its state directory (-state,
// default $STATE_DIRECTORY, else $XDG_STATE_HOME/quicpool, else ~/.local/state/quicpool), made
// on first start, so its fingerprint survives restarts; -cert and -key use a certificate of
// your own instead. The client will not start unless told how to check the server: -fingerprint
// (compared during the TLS handshake), -ca (the chain and the name are verified; -tls 2 alone
// uses the system's CAs), or -insecure.
//
// Protocol and clients. The server listens on all interfaces by default (-listen :4433), so that
// other machines reach it; restrict it with -allow or -listen. It runs one server pool that
// holds at most -clients connections from one IP address and twice as many in all (a client of
// -max above 128 streams uses one connection per 128, and a client whose connection went silent
// briefly holds a second one while it reconnects), and takes every stream the clients open as
// soon as it arrives. The client takes an idle stream for every TCP connection it accepts and
// writes "qpt2" on it; the server reads that, dials its target and answers one status byte,
// then both pipe bytes, in frames, until each side has closed (a half-close travels through)
// and said it has everything (so that a stop that waits for its tunnels cuts none short). No
// control stream is used: each tunnel names itself, so several clients share one server, and a
// client never depends on a stream that a server restart takes away.
//
// Failures. The client never exits on its own once started: while no connection to the server
// answers it refuses every new TCP connection at once (a reset), logs the outage, and logs the
// recovery with its duration when the pool has reconnected (it redials every 500ms during the
// first 20s of an outage, then after pauses of at most -retry, default 1s). Tunnels that had
// not yet been answered by the server when it was lost are cut at once; the others live or die
// with their connection. It exits 1 at startup only if it cannot listen, or if the server fails
// the identity check before it was ever reached.
//
// Watching. -metrics ADDR serves the pool's Prometheus metrics (the quicpool_ metrics of module
// github.com/quicpool/quicpool/contrib/prometheus, labelled with -name, and the Go runtime's and
// the process's) at http://ADDR/metrics; keep ADDR on loopback or a private network. -qlog DIR
// writes a qlog trace of every QUIC connection into DIR, to open in qvis.
//
// Shutdown. On SIGINT or SIGTERM both stop taking tunnels, log "draining N tunnels", wait for
// them at most -grace (default 5s), close what is left and exit 0. A second signal exits 1 at
// once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

const usage = `usage: quicpool <command> [flags]

commands:
  server  the server side of a TCP-over-QUIC tunnel: accept clients and
          forward their tunnels to a TCP target (quicpool server -h for flags)
  client  the client side: accept TCP connections on a local port and carry
          them through the pool to the server (quicpool client -h for flags)
  demo    run a server pool and a client pool on 127.0.0.1 in this process and
          measure echo round trips through them (quicpool demo -h for flags)
  help    print this message

example: forward 127.0.0.1:9000 on the client machine to 127.0.0.1:8080 on the server
  server$ quicpool server -target 127.0.0.1:8080     (prints the client command)
  client$ quicpool client -server SERVER:4433 -fingerprint HEX
  client$ curl http://127.0.0.1:9000/
`

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-signals
		cancel() // the command drains its tunnels
		sig := <-signals
		fmt.Fprintf(os.Stderr, "quicpool: second signal (%v): exiting now\n", sig)
		os.Exit(1)
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line args (without the program name) and returns the exit code: 0
// on success, 1 when the command failed, 2 for a usage error (no command, an unknown one, a bad
// flag).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "demo":
		return demoCommand(ctx, args[1:], stdout, stderr)
	case "server":
		return serverCommand(ctx, args[1:], stdout, stderr)
	case "client":
		return clientCommand(ctx, args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "quicpool: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

// demoCommand parses the demo subcommand's flags and runs the demo.
func demoCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("quicpool demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg demoConfig
	fs.IntVar(&cfg.Workers, "workers", 16, "goroutines doing round trips")
	fs.DurationVar(&cfg.Duration, "duration", 5*time.Second, "how long to run")
	fs.IntVar(&cfg.MinCap, "min", 32, "minimum idle streams of the client pool")
	fs.IntVar(&cfg.MaxCap, "max", 64, "maximum idle streams of the client pool (and capacity of the server pool)")
	fs.IntVar(&cfg.Size, "size", 1024, "request payload in bytes")
	verbose := fs.Bool("v", false, "log pool events to stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "quicpool demo: unexpected arguments %q\n", fs.Args())
		fs.Usage()
		return 2
	}
	if err := cfg.validate(); err != nil {
		fmt.Fprintf(stderr, "quicpool demo: %v\n", err)
		return 2
	}
	if *verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	cfg.Live = isTerminal(stdout)

	sum, err := runDemo(ctx, cfg, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "quicpool demo: %v\n", err)
		return 1
	}
	if sum.Errors > 0 || sum.Ops == 0 {
		return 1
	}
	return 0
}

// isTerminal reports whether w is a character device such as a terminal, where a status line
// can be redrawn in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// parseFlags parses a subcommand's flags: ok is false with the exit code when the command must
// not run (0 for -h, 2 for a usage error, already reported).
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected arguments %q\n", fs.Name(), fs.Args())
		fs.Usage()
		return 2, false
	}
	return 0, true
}

// listFlag is a flag of comma-separated values that may also be repeated.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

// Set adds the comma-separated values of s. An empty value is an error, not nothing: an
// allow-list given as "$UNSET" must not quietly allow everyone.
func (l *listFlag) Set(s string) error {
	for v := range strings.SplitSeq(s, ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			return fmt.Errorf("empty value in %q", s)
		}
		*l = append(*l, v)
	}
	return nil
}

// checkAddr checks a HOST:PORT flag value of network ("tcp" or "udp"): its port is a number of
// 1 to 65535 or a service name ("https"), or 0 too when anyPort (a listen address: the system
// picks one).
func checkAddr(flag, network, addr string, anyPort bool) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s: %w", flag, err)
	}
	lowest := 1
	if anyPort {
		lowest = 0
	}
	if n, err := net.LookupPort(network, port); err != nil || n < lowest {
		return fmt.Errorf("%s %s: the port must be a number from %d to 65535, or a service name", flag, addr, lowest)
	}
	return nil
}

// minStats is the shortest -stats period: a health line more often floods the log.
const minStats = time.Second

// checkPeriods checks the -keepalive, -grace and -stats flags both tunnel commands have.
func checkPeriods(keepAlive, grace, stats time.Duration) error {
	switch {
	case keepAlive < minKeepAlive || keepAlive > maxKeepAlive:
		return errors.New("-keepalive must be between 1s and 24h")
	case grace < 0 || stats < 0:
		return errors.New("-grace and -stats cannot be negative")
	case stats > 0 && stats < minStats:
		return fmt.Errorf("-stats must be 0 (none) or at least %v", minStats)
	}
	return nil
}

// commonFlags are the flags both tunnel commands have.
type commonFlags struct {
	keepAlive, grace, stats time.Duration
	verbose, debug          bool
	observe                 observeConfig
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.DurationVar(&c.keepAlive, "keepalive", defaultKeepAlive, "QUIC keep-alive period: a connection silent for 3 periods is closed (idle connections are probed every 250ms regardless)")
	fs.DurationVar(&c.grace, "grace", defaultGrace, "on SIGINT/SIGTERM, how long to wait for open tunnels before closing them")
	fs.DurationVar(&c.stats, "stats", 0, "log a health line this often, at least 1s (connections, idle streams, tunnels, RTT, bytes); 0 for none")
	fs.BoolVar(&c.verbose, "v", false, "also log every tunnel opened and closed, with its bytes and duration")
	fs.BoolVar(&c.debug, "debug", false, "also log the pool's own events (connections, streams, restarts)")
	c.observe.register(fs)
}

// serverCommand parses the server subcommand's flags and runs the server until ctx is done.
func serverCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("quicpool server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg serverConfig
	var common commonFlags
	var allow listFlag
	fs.StringVar(&cfg.Listen, "listen", ":4433", "UDP address to accept clients on; the default, all interfaces, is reachable from other machines")
	fs.StringVar(&cfg.Target, "target", "", "TCP address to forward every tunnel to (required)")
	fs.IntVar(&cfg.Clients, "clients", 8, "connections one client IP address may hold; the server holds twice as many in all (a client of -max above 128 takes one per 128)")
	fs.StringVar(&cfg.StateDir, "state", defaultStateDir(), "directory that keeps the server's certificate (server.pem), made on first start, so its fingerprint survives restarts")
	fs.StringVar(&cfg.CertFile, "cert", "", "PEM certificate file to use instead of the one in -state")
	fs.StringVar(&cfg.KeyFile, "key", "", "PEM private key file of -cert")
	fs.Var(&allow, "allow", "accept clients only from these IPs or CIDR prefixes, comma-separated or repeated; an empty value is an error, not \"any\" (default: any)")
	common.register(fs)
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	cfg.Allow = allow
	cfg.KeepAlive, cfg.Grace, cfg.Stats, cfg.Debug = common.keepAlive, common.grace, common.stats, common.debug
	cfg.observeConfig = common.observe
	cfg.Log = newLogger(stderr, common.verbose || common.debug)
	if err := cfg.validate(); err != nil {
		fmt.Fprintf(stderr, "quicpool server: %v\n", err)
		return 2
	}
	if err := runServer(ctx, cfg, stdout); err != nil {
		fmt.Fprintf(stderr, "quicpool server: %v\n", err)
		return 1
	}
	return 0
}

// clientCommand parses the client subcommand's flags and runs the client until ctx is done.
func clientCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("quicpool client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg clientConfig
	var common commonFlags
	fs.StringVar(&cfg.Server, "server", "", "UDP address of the server, host:port (required)")
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:9000", "TCP address to accept connections on")
	fs.StringVar(&cfg.Fingerprint, "fingerprint", "", "SHA-256 of the server's certificate in hex, as the server prints it: accept no other server")
	fs.StringVar(&cfg.CAFile, "ca", "", "PEM file of the CA that signed the server's certificate: verify its chain and name")
	fs.StringVar(&cfg.ServerName, "servername", "", "the name to verify the server's certificate for with -ca or -tls 2 (default: the host of -server)")
	fs.BoolVar(&cfg.Insecure, "insecure", false, "do not check the server's identity (the traffic is encrypted, but anyone on the path can intercept it)")
	fs.StringVar(&cfg.TLS, "tls", "", "NodePass TLS code: 0 with -insecure, 1 with -fingerprint, 2 verifies the chain (-ca, or the system's CAs); default: follow those flags")
	fs.IntVar(&cfg.MinCap, "min", 8, "minimum idle streams kept ready")
	fs.IntVar(&cfg.MaxCap, "max", 64, "maximum idle streams kept ready")
	fs.DurationVar(&cfg.Retry, "retry", defaultRetry, "longest pause between attempts to reconnect while the server is unreachable (the first 20s of an outage are retried every 500ms)")
	common.register(fs)
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	cfg.KeepAlive, cfg.Grace, cfg.Stats, cfg.Debug = common.keepAlive, common.grace, common.stats, common.debug
	cfg.observeConfig = common.observe
	cfg.Log = newLogger(stderr, common.verbose || common.debug)
	if err := cfg.validate(); err != nil {
		fmt.Fprintf(stderr, "quicpool client: %v\n", err)
		return 2
	}
	if err := runClient(ctx, cfg, stdout); err != nil {
		fmt.Fprintf(stderr, "quicpool client: %v\n", err)
		return 1
	}
	return 0
}
