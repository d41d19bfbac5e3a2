// Command quicpool exercises the quicpool library.
//
//	quicpool demo [flags]    run a server pool and a client pool in one process and measure
//	                         echo round trips through them
//
// The server and client subcommands, which run one side each against a remote peer, are planned.
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
	"time"
)

const usage = `usage: quicpool <command> [flags]

commands:
  demo    run a server pool and a client pool on 127.0.0.1 in this process and
          measure echo round trips through them (quicpool demo -h for flags)
  help    print this message

planned:
  server  run a server pool for a remote client
  client  run a client pool against a remote server
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
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
