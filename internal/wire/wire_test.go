package wire

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/quicpool/quicpool/internal/core"
)

// A failed handshake read says what it was reading and why, and wraps both ErrBadHandshake and
// the reader's error.
func TestHandshakeReadErrors(t *testing.T) {
	var ir IDReader
	_, err := ir.Read(&interrupted{data: []byte{1, 2, 3, 4}, at: 2})
	if want := "quicpool: bad stream handshake: reading stream ID: i/o timeout"; err == nil || err.Error() != want {
		t.Fatalf("IDReader.Read cut short = %v, want %q", err, want)
	}
	if !errors.Is(err, core.ErrBadHandshake) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("IDReader.Read cut short = %v: wraps neither ErrBadHandshake nor the deadline", err)
	}
	err = ReadHandshake(bytes.NewReader(nil))
	if want := "quicpool: bad stream handshake: reading handshake byte: EOF"; err == nil || err.Error() != want {
		t.Fatalf("ReadHandshake of nothing = %v, want %q", err, want)
	}
}
