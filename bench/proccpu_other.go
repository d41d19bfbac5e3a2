//go:build !unix

package main

import "time"

// processCPU is the CPU time this process has used so far, in clock ticks from /proc where there
// is one (0 elsewhere).
func processCPU() time.Duration { return time.Duration(readCPU().self) * 10 * time.Millisecond }
