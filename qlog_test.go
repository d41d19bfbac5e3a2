package quicpool_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quicpool/quicpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// WithQlogDir: each side of a connection writes a qlog file into the directory, named after the
// connection's original destination connection ID, and a connection that has closed leaves a
// complete JSON-SEQ file: records separated by 0x1E, each a JSON value, a header then events.
func TestQlogDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "qlog") // created by the option
	server := startServer(t, 8, quicpool.WithQlogDir(dir))
	client := startClient(t, 2, 2, server.Addr(), quicpool.WithQlogDir(dir))
	sc, cc := tunnel(t, server, client, []byte("traced"))
	require.NoError(t, sc.Close())
	require.NoError(t, cc.Close())

	// One connection so far: one file for each side, with the same connection ID.
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 2, "one connection, two sides")
	names := []string{entries[0].Name(), entries[1].Name()}
	odcid := strings.TrimSuffix(names[0], "_client.sqlog")
	require.NotEqual(t, names[0], odcid, "files %v", names)
	require.ElementsMatch(t, []string{odcid + "_client.sqlog", odcid + "_server.sqlog"}, names)

	// Close the connection from the server: CloseWithError returns once the connection has
	// stopped, its trace flushed. The client's side is complete once the client has noticed,
	// which it has when it has reconnected.
	forceReconnect(t, server, client)

	for _, side := range []string{"server", "client"} {
		raw, err := os.ReadFile(filepath.Join(dir, odcid+"_"+side+".sqlog"))
		require.NoError(t, err)
		header, events := parseJSONSeq(t, raw)
		assert.Equal(t, "JSON-SEQ", header["qlog_format"], side)
		trace, _ := header["trace"].(map[string]any)
		assert.Equal(t, map[string]any{"type": side}, trace["vantage_point"], side)
		assert.Contains(t, trace["event_schemas"], "urn:ietf:params:qlog:events:quic-14", side)
		assert.GreaterOrEqual(t, len(events), 10, "%s: a handshake, a stream and a close are more than a few events", side)
		counts := map[string]int{}
		for _, ev := range events {
			counts[ev["name"].(string)]++
		}
		assert.NotZero(t, counts["transport:packet_sent"], "%s: %v", side, counts)
		assert.NotZero(t, counts["transport:packet_received"], "%s: %v", side, counts)
		assert.Equal(t, 1, counts["transport:connection_closed"], "%s: %v", side, counts)
	}

	// The reconnected connection is traced too.
	entries, err = os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 4)
}

// parseJSONSeq parses a JSON text sequence (RFC 7464): every record starts with the record
// separator 0x1E and is one JSON value. It returns the first record (a qlog header) and the
// others (the events, each with a name and a time).
func parseJSONSeq(t *testing.T, raw []byte) (header map[string]any, events []map[string]any) {
	t.Helper()
	require.NotEmpty(t, raw)
	require.Equal(t, byte(0x1e), raw[0], "a JSON-SEQ file starts with a record separator")
	for i, record := range bytes.Split(raw[1:], []byte{0x1e}) {
		var v map[string]any
		require.NoError(t, json.Unmarshal(record, &v), "record %d: %q", i, record)
		if i == 0 {
			header = v
			continue
		}
		require.IsType(t, "", v["name"], "record %d", i)
		require.IsType(t, float64(0), v["time"], "record %d", i)
		events = append(events, v)
	}
	require.NotNil(t, header)
	return header, events
}

func TestQlogDirInvalid(t *testing.T) {
	_, err := quicpool.NewClient("127.0.0.1:1", quicpool.WithQlogDir(""))
	require.ErrorIs(t, err, quicpool.ErrInvalidConfig)
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	_, err = quicpool.NewServer("127.0.0.1:0", selfSigned(t), quicpool.WithQlogDir(filepath.Join(file, "qlog")))
	require.ErrorIs(t, err, quicpool.ErrInvalidConfig)
}
