package wire

import "testing"

// BenchmarkKeyOf: every take by ID parses its ID twice (the facade checks it, the coordinator
// files the take under its Key).
func BenchmarkKeyOf(b *testing.B) {
	for b.Loop() {
		if _, err := KeyOf("0a1b2c3d"); err != nil {
			b.Fatal(err)
		}
	}
}
