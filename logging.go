package quicpool

import (
	"context"
	"fmt"
	"log/slog"
)

// recoveringHandler passes a pool's log records on to the handler of the logger WithLogger gave
// it, and recovers a panic in that handler: the record is dropped. The pool logs inside its
// actors and while it recovers a panic of its own, so a panic escaping a handler there would
// have hollywood restart the actor with an empty state, or end the process.
type recoveringHandler struct{ h slog.Handler }

func (r recoveringHandler) Enabled(ctx context.Context, level slog.Level) (enabled bool) {
	defer func() {
		if recover() != nil {
			enabled = false
		}
	}()
	return r.h.Enabled(ctx, level)
}

func (r recoveringHandler) Handle(ctx context.Context, rec slog.Record) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%w in the log handler: %v", ErrPanic, v)
		}
	}()
	return r.h.Handle(ctx, rec)
}

// WithAttrs and WithGroup keep r as it is if the handler's own panics: the attributes or the
// group are dropped, the records are not.
func (r recoveringHandler) WithAttrs(attrs []slog.Attr) (h slog.Handler) {
	defer func() {
		if recover() != nil {
			h = r
		}
	}()
	return recoveringHandler{r.h.WithAttrs(attrs)}
}

func (r recoveringHandler) WithGroup(name string) (h slog.Handler) {
	defer func() {
		if recover() != nil {
			h = r
		}
	}()
	return recoveringHandler{r.h.WithGroup(name)}
}
