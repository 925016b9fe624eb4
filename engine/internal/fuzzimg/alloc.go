package fuzzimg

import "runtime/metrics"

// Allocated returns the bytes the program has allocated so far. It reads
// runtime/metrics, which does not stop the world as ReadMemStats does, so
// a fuzz target can measure every execution.
func Allocated() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
