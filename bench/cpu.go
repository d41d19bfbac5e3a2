package main

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// cpuClock is a reading of the machine's busy CPU time and of this process's own, in clock ticks
// (Linux /proc; zero elsewhere). Two readings tell how much of the machine other processes used
// in between: a benchmark sharing its 2 CPUs with, say, a test run measures that run as much as
// itself, and the results say so.
type cpuClock struct {
	machine, self int64
	at            time.Time
}

func readCPU() cpuClock {
	c := cpuClock{at: time.Now()}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
		for i, v := range f {
			n, _ := strconv.ParseInt(v, 10, 64)
			if i >= 1 && i <= 8 && i != 4 && i != 5 { // all but idle and iowait
				c.machine += n
			}
		}
	}
	if b, err := os.ReadFile("/proc/self/stat"); err == nil {
		// The fields after the command name (which may hold spaces) start at state; utime and
		// stime are the 14th and 15th fields of the line, the 12th and 13th after the name.
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 {
			f := strings.Fields(s[i+1:])
			if len(f) > 12 {
				u, _ := strconv.ParseInt(f[11], 10, 64)
				st, _ := strconv.ParseInt(f[12], 10, 64)
				c.self = u + st
			}
		}
	}
	return c
}

// elsewhere returns the share of all CPUs that other processes used since an earlier reading
// (0..1; clock ticks are taken as the usual 100 per second).
func (c cpuClock) elsewhere(since cpuClock) float64 {
	wall := c.at.Sub(since.at).Seconds()
	if wall <= 0 {
		return 0
	}
	other := float64((c.machine - since.machine) - (c.self - since.self))
	return max(other/100/(wall*float64(runtime.NumCPU())), 0)
}

// A measurement during which other processes used more than maxElsewhere of the CPUs is
// repeated, up to quietTries times in all (the -quiet-tries flag), and the quietest one is kept:
// above that share, the numbers measure the other processes as much as the pools (this machine
// has 2 CPUs and may be shared).
const maxElsewhere = 0.05

var quietTries = 4

// measureQuietly runs f until other processes used at most maxElsewhere of the CPUs while it
// ran, at most quietTries times, and returns the result of the quietest run, the share of the
// CPUs others used during it, and the number of runs.
func measureQuietly[T any](f func() T) (best T, elsewhere float64, tries int) {
	elsewhere = 2
	for tries < quietTries {
		tries++
		before := readCPU()
		r := f()
		if e := readCPU().elsewhere(before); e < elsewhere {
			best, elsewhere = r, e
		}
		if elsewhere <= maxElsewhere {
			break
		}
		settle()
	}
	return best, elsewhere, tries
}
