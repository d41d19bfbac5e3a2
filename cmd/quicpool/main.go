// Command quicpool exercises the quicpool library.
//
//	quicpool demo [flags]    run a server pool and a client pool in one process and measure
//	                         echo round trips through them
//	quicpool server [flags]  the server side of a TCP-over-QUIC forward tunnel: accept a client
//	                         pool and forward each of its tunnels to a TCP target
//	quicpool client [flags]  the client side: accept TCP connections on a local port and carry
//	                         each through a pool stream to the server, which forwards it
//
// Forward local port 9000 to a web server on the server's host, port 8080:
//
//	server$ quicpool server -listen 0.0.0.0:4433 -target 127.0.0.1:8080
//	quicpool server: listening on 0.0.0.0:4433, forwarding to 127.0.0.1:8080, fingerprint 3a7f...
//	client$ quicpool client -server server.example:4433 -listen 127.0.0.1:9000 -fingerprint 3a7f...
//	client$ curl http://127.0.0.1:9000/
//
// The client takes an idle stream for every TCP connection it accepts and sends the stream's
// ID, a line of 8 hex characters, over the pool's control stream (quicpool.ControlID); the server
// takes the stream with that ID and dials its target. A half-close (EOF) travels through the
// tunnel in both directions. The server serves one client at a time: when the client goes away
// it starts a new pool on the same address for the next one. The client exits with an error when
// it loses the server's control stream; restart it. Both exit 0 on SIGINT or SIGTERM, once every
// tunnel has closed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

const usage = `usage: quicpool <command> [flags]

commands:
  demo    run a server pool and a client pool on 127.0.0.1 in this process and
          measure echo round trips through them (quicpool demo -h for flags)
  server  the server side of a TCP-over-QUIC tunnel: accept a client pool and
          forward its tunnels to a TCP target (quicpool server -h for flags)
  client  the client side: accept TCP connections on a local port and carry
          them through the pool to the server (quicpool client -h for flags)
  help    print this message

example: forward 127.0.0.1:9000 on this host to 127.0.0.1:8080 on the server
  quicpool server -listen 0.0.0.0:4433 -target 127.0.0.1:8080
  quicpool client -server SERVER:4433 -listen 127.0.0.1:9000 -fingerprint HEX
  curl http://127.0.0.1:9000/
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line args (without the program name) and returns the exit code: 0
// on success, 1 when the command failed, 2 for a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return 0
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

// serverCommand parses the server subcommand's flags and runs the server until ctx is done.
func serverCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("quicpool server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg serverConfig
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:4433", "UDP address to accept the client pool on")
	fs.StringVar(&cfg.Target, "target", "", "TCP address to forward every tunnel to (required)")
	fs.IntVar(&cfg.MaxCap, "max", 64, "capacity of the server pool: the most idle streams it holds")
	fs.StringVar(&cfg.CertFile, "cert", "", "PEM certificate file (default: a fresh self-signed certificate, a new fingerprint on every start)")
	fs.StringVar(&cfg.KeyFile, "key", "", "PEM private key file of -cert")
	fs.StringVar(&cfg.ClientIP, "client-ip", "", "accept the client pool only from this IP")
	verbose := fs.Bool("v", false, "log every tunnel and the pool's connection events to stderr")
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	cfg.Log = newLogger(stderr, *verbose)
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
	fs.StringVar(&cfg.Server, "server", "127.0.0.1:4433", "UDP address of the server pool, host:port")
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:9000", "TCP address to accept connections on")
	fs.IntVar(&cfg.MinCap, "min", 8, "minimum idle streams of the client pool")
	fs.IntVar(&cfg.MaxCap, "max", 64, "maximum idle streams of the client pool")
	fs.StringVar(&cfg.TLS, "tls", "1", "TLS code: 0 encrypts only, 1 self-signed server (pin it with -fingerprint), 2 verifies chain and host")
	fs.StringVar(&cfg.Fingerprint, "fingerprint", "", "SHA-256 of the server certificate in hex, as the server prints it; refuse any other")
	verbose := fs.Bool("v", false, "log every tunnel and the pool's connection events to stderr")
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	cfg.Log = newLogger(stderr, *verbose)
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
