package main

import "testing"

// demoPackage is the package of `baton demo`, as TestLayers names it (a
// constant, so that its long name does not realign that test's table).
const demoPackage = "cmd/baton/internal/demo"

// TestDemoUsage checks that bad input is refused with exit 2 before the
// demo starts anything.
func TestDemoUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{name: "extra argument", args: []string{"baton", "demo", "now"}},
		{name: "no workers", args: []string{"baton", "demo", "--workers", "0"}},
		{name: "no clients", args: []string{"baton", "demo", "--concurrency", "0"}},
		{name: "unknown flag", args: []string{"baton", "demo", "--fast"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code := run(tt.args); code != exitUsage {
				t.Errorf("run(%q) = %d, want %d", tt.args, code, exitUsage)
			}
		})
	}
}
