package main

import (
	"fmt"
	"runtime/pprof"
	"slices"
	"strings"

	"github.com/google/pprof/profile"
)

// ---------------------------------------------------------------------------------------------
// What a memory child's heap is made of
//
// A profiled memory child (-memprofile, the second pair of the memory workload) samples every
// allocation (runtime.MemProfileRate = 1) and takes a heap profile at its baseline and again
// when it measures. Each live allocation counts for the innermost frame of its stack that
// belongs to a known package, as in the CPU profile; quic-go's are split into those made for a
// stream (a quic-go frame on the stack that opens, accepts or feeds one) and the rest, the
// connections' and the listener's own state (their crypto streams and stream maps included).
// The parts' growth from the baseline to the measurement is what the pool's streams and
// connections hold.

// The heap's parts.
const (
	heapStreams   = "quic-go: streams (send and receive state, frame buffers, flow control)"
	heapConns     = "quic-go: connections and listener (TLS and crypto state, packet handling, queues)"
	heapQuicpool  = "quicpool (idle store, actors' state, workers)"
	heapHollywood = "hollywood (engine registry, actors, inboxes)"
	heapNodePass  = "NodePass quic (its stream map, ID handling)"
	heapVistone   = "vistone quic (its shards, ID channels)"
	heapHarness   = "bench harness (raw quic-go's stream list)"
	heapG         = "goroutine descriptors (the runtime keeps those of ended goroutines for reuse)"
	heapOther     = "the runtime and the standard library, called by none of the above"
)

// heapParts is the order the report lists the parts in.
var heapParts = []string{heapStreams, heapConns, heapQuicpool, heapHollywood, heapNodePass, heapVistone, heapHarness, heapG,
	heapOther}

// heapOwners are the heap's parts by the prefix of a function's name; quic-go's functions count
// for heapConns until heapPart looks for a stream among them.
var heapOwners = []prefixPart{
	{"github.com/quicpool/quicpool", heapQuicpool},
	{"github.com/anthdm/hollywood", heapHollywood},
	{"github.com/quic-go/quic-go", heapConns},
	{"github.com/NodePassProject", heapNodePass},
	{"github.com/vistone", heapVistone},
	{"main.", heapHarness},
}

// forStream reports whether a quic-go function opens, accepts or feeds a stream: its name
// mentions Stream.
func forStream(name string) bool {
	return strings.HasPrefix(name, "github.com/quic-go/quic-go") && strings.Contains(name, "Stream")
}

// forConnection reports whether a quic-go function sets up or feeds the connection's own state
// although its name mentions streams: the crypto streams (their handshake buffers stay), and
// the functions that make a connection's stream maps when it starts (not the closures they
// leave behind, which open each stream).
func forConnection(name string) bool {
	if !strings.HasPrefix(name, "github.com/quic-go/quic-go") {
		return false
	}
	if strings.Contains(strings.ToLower(name), "cryptostream") {
		return true
	}
	short := shortName(name)
	fn := strings.TrimSuffix(short[strings.LastIndexByte(short, '.')+1:], "[…]")
	return slices.Contains([]string{"newStreamsMap", "initMaps", "newIncomingStreamsMap", "newOutgoingStreamsMap"}, fn)
}

// heapPart returns the part of one allocation's stack (leaf first). A goroutine's descriptor is
// allocated on the system stack, whose frames do not say who started the goroutine; a TLS
// handshake runs on a goroutine of crypto/tls's own, for a QUIC connection.
func heapPart(names []string) string {
	if slices.Contains(names, "runtime.malg") {
		return heapG
	}
	for i, name := range names {
		switch p := partOf(name, heapOwners); p {
		case "":
			continue
		case heapConns:
			callers := names[i:]
			if !slices.ContainsFunc(callers, forConnection) && slices.ContainsFunc(callers, forStream) {
				return heapStreams
			}
			return p
		default:
			return p
		}
	}
	if slices.ContainsFunc(names, func(name string) bool { return strings.HasPrefix(name, "crypto/tls.") }) {
		return heapConns
	}
	return heapOther
}

// heapByPart returns the live heap of a heap profile by part.
func heapByPart(p *profile.Profile) (map[string]int64, error) {
	space := sampleIndex(p, "inuse_space", "bytes")
	if space < 0 {
		return nil, fmt.Errorf("heap profile: no inuse_space samples")
	}
	parts := map[string]int64{}
	for _, smp := range p.Sample {
		parts[heapPart(frames(smp))] += smp.Value[space]
	}
	return parts, nil
}

// heapNow takes this process's heap profile (as of the last garbage collection) by part.
func heapNow() (map[string]int64, error) {
	var buf strings.Builder // gzipped protobuf
	if err := pprof.Lookup("heap").WriteTo(&buf, 0); err != nil {
		return nil, err
	}
	p, err := profile.Parse(strings.NewReader(buf.String()))
	if err != nil {
		return nil, err
	}
	return heapByPart(p)
}

// heapGrowth is after - before, part by part.
func heapGrowth(before, after map[string]int64) map[string]int64 {
	d := map[string]int64{}
	for _, part := range heapParts {
		if v := after[part] - before[part]; v != 0 {
			d[part] = v
		}
	}
	return d
}
