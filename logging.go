package quicpool

import (
	"context"
	"fmt"
	"log/slog"
)

// recoveringHandler passes a pool's log records on to the handler of the logger WithLogger gave
// it, and recovers a panic in that handler: the record is dropped (WithAttrs and WithGroup keep
// the handler as it was). The pool logs inside its actors and while it recovers a panic of its
// own, so a panic escaping a handler there would have hollywood restart the actor with an empty
// state, or end the process.
type recoveringHandler struct{ h slog.Handler }

func (r recoveringHandler) Enabled(ctx context.Context, level slog.Level) (enabled bool) {
	safely(func() { enabled = r.h.Enabled(ctx, level) })
	return enabled
}

func (r recoveringHandler) Handle(ctx context.Context, rec slog.Record) (err error) {
	if v := safely(func() { err = r.h.Handle(ctx, rec) }); v != nil {
		err = fmt.Errorf("%w in the log handler: %v", ErrPanic, v)
	}
	return err
}

func (r recoveringHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	h := slog.Handler(r)
	safely(func() { h = recoveringHandler{r.h.WithAttrs(attrs)} })
	return h
}

func (r recoveringHandler) WithGroup(name string) slog.Handler {
	h := slog.Handler(r)
	safely(func() { h = recoveringHandler{r.h.WithGroup(name)} })
	return h
}

// safely runs f and returns what it panicked with, nil if it returned.
func safely(f func()) (panicked any) {
	defer func() { panicked = recover() }()
	f()
	return nil
}
