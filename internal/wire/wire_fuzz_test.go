package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/quicpool/quicpool/internal/core"
)

// FuzzParseID: any string a caller passes to OutgoingGet either is exactly the lowercase hex of
// IDLen bytes, and round-trips, or is rejected with ErrInvalidID. Never a panic.
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
			return
		}
		if err != nil {
			t.Fatalf("ParseID(%q) rejected a valid ID: %v", id, err)
		}
		if got := hex.EncodeToString(raw[:]); got != id {
			t.Fatalf("ParseID(%q) round-trips to %q", id, got)
		}
	})
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// FuzzReadID: whatever a server sends after the handshake byte, the client reads exactly IDLen
// bytes and labels the stream with their lowercase hex, or fails with ErrBadHandshake.
func FuzzReadID(f *testing.F) {
	for _, seed := range [][]byte{{0, 0, 0, 0}, {1, 2, 3, 4, 5}, {}, {0xff}, {0, 0, 0}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		id, err := ReadID(bytes.NewReader(data))
		if len(data) < IDLen {
			if !errors.Is(err, core.ErrBadHandshake) {
				t.Fatalf("ReadID(%x) = %q, %v; want ErrBadHandshake", data, id, err)
			}
			return
		}
		if err != nil || id != hex.EncodeToString(data[:IDLen]) {
			t.Fatalf("ReadID(%x) = %q, %v", data, id, err)
		}
		if _, err := ParseID(id); err != nil {
			t.Fatalf("ReadID produced an ID ParseID rejects: %q", id)
		}
	})
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
