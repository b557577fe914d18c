package proxywasm

import (
	"time"
	_ "unsafe" // for go:linkname
)

// nanotime is the runtime's monotonic clock: one WASI clock_time_get call,
// where time.Now makes two (wall clock and monotonic clock).
//
//go:linkname nanotime runtime.nanotime
func nanotime() int64

// Monotonic is a reading of the monotonic clock, for measuring durations
// within the VM.
type Monotonic int64

// Now reads the monotonic clock.
func Now() Monotonic { return Monotonic(nanotime()) }

// Since is the time elapsed since m.
func (m Monotonic) Since() time.Duration { return time.Duration(nanotime() - int64(m)) }
