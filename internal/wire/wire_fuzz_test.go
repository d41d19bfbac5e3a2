package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/quicpool/quicpool/internal/core"
)

// FuzzParseID: any string a caller passes to OutgoingGet either is exactly the lowercase hex of
// IDLen bytes, and round-trips (through its Key too), or is rejected with ErrInvalidID. Never a panic.
func FuzzParseID(f *testing.F) {
	for _, seed := range []string{"00000000", "0a1b2c3d", "ffffffff", "", "non-existent-id", "000000000",
		"0000000", "ABCDEF01", "0000000g", "0x000000", " 0000000", "00000000\n", "\x00\x00\x00\x00\x00\x00\x00\x00"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, id string) {
		raw, err := ParseID(id)
		valid := len(id) == 2*IDLen && strings.ToLower(id) == id && isHex(id)
		if !valid {
			if !errors.Is(err, core.ErrInvalidID) {
				t.Fatalf("ParseID(%q) = %v, want ErrInvalidID", id, err)
			}
			if raw != [IDLen]byte{} {
				t.Fatalf("ParseID(%q) returned bytes %x with its error", id, raw)
			}
			if _, err := KeyOf(id); !errors.Is(err, core.ErrInvalidID) {
				t.Fatalf("KeyOf(%q) = %v, want ErrInvalidID", id, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("ParseID(%q) rejected a valid ID: %v", id, err)
		}
		if got := hex.EncodeToString(raw[:]); got != id {
			t.Fatalf("ParseID(%q) round-trips to %q", id, got)
		}
		k, err := KeyOf(id)
		if err != nil || k.ID() != id {
			t.Fatalf("KeyOf(%q) = %v, %v; its ID is %q", id, k, err, k.ID())
		}
	})
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// FuzzReadID: a server's answer reads as an ID only when it has IDLen bytes, and then as their
// lowercase hex, which ParseID accepts; a read cut short at a deadline (after at bytes) keeps
// what it had and the next call finishes the same ID.
func FuzzReadID(f *testing.F) {
	for _, seed := range []struct {
		data []byte
		at   uint8
	}{{[]byte{0, 0, 0, 0}, 4}, {[]byte{1, 2, 3, 4, 5}, 2}, {[]byte{}, 0}, {[]byte{0xff}, 1}, {[]byte{0, 0, 0}, 0}, {[]byte{9, 8, 7, 6}, 0}} {
		f.Add(seed.data, seed.at)
	}
	f.Fuzz(func(t *testing.T, data []byte, at uint8) {
		r := &interrupted{data: data, at: int(at) % (len(data) + 1)}
		var ir IDReader
		id, err := ir.Read(r)
		if r.at < IDLen && r.at < len(data) {
			if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.Is(err, core.ErrBadHandshake) {
				t.Fatalf("Read cut at %d of %x = %q, %v; want a deadline error", r.at, data, id, err)
			}
			id, err = ir.Read(r)
		}
		if len(data) < IDLen {
			if !errors.Is(err, core.ErrBadHandshake) {
				t.Fatalf("ReadID(%x) = %q, %v; want ErrBadHandshake", data, id, err)
			}
			return
		}
		if err != nil || id != hex.EncodeToString(data[:IDLen]) {
			t.Fatalf("ReadID(%x) cut at %d = %q, %v", data, r.at, id, err)
		}
		if _, err := ParseID(id); err != nil {
			t.Fatalf("ReadID produced an ID ParseID rejects: %q", id)
		}
	})
}

// interrupted reads data, but fails once with os.ErrDeadlineExceeded when it reaches offset at,
// as a stream read does at its deadline.
type interrupted struct {
	data     []byte
	at, off  int
	deadline bool // the deadline has passed: at is behind
}

func (r *interrupted) Read(p []byte) (int, error) {
	end := len(r.data)
	if !r.deadline {
		if r.off == r.at {
			r.deadline = true
			return 0, os.ErrDeadlineExceeded
		}
		end = r.at
	}
	if r.off == len(r.data) {
		return 0, io.EOF
	}
	n := copy(p, r.data[r.off:end])
	r.off += n
	return n, nil
}

// FuzzReadHandshake: a server accepts a stream only when its first byte is 0x00.
func FuzzReadHandshake(f *testing.F) {
	for _, seed := range [][]byte{{0}, {0, 1}, {1}, {0xff}, {}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := ReadHandshake(bytes.NewReader(data))
		want := len(data) > 0 && data[0] == HandshakeByte
		if want != (err == nil) {
			t.Fatalf("ReadHandshake(%x) = %v", data, err)
		}
		if err != nil && !errors.Is(err, core.ErrBadHandshake) {
			t.Fatalf("ReadHandshake(%x) = %v, want ErrBadHandshake", data, err)
		}
	})
}
