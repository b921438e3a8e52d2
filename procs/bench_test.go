//go:build linux

package procs

import (
	"os"
	"testing"
)

func BenchmarkInfo(b *testing.B) {
	pid := os.Getpid()
	for b.Loop() {
		if _, err := Info(pid); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStartTime(b *testing.B) {
	pid := os.Getpid()
	for b.Loop() {
		if _, err := StartTime(pid); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkChildren(b *testing.B) {
	pid := os.Getppid()
	for b.Loop() {
		if _, err := Children(pid); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkListeners(b *testing.B) {
	pid := os.Getpid()
	for b.Loop() {
		if _, err := Listeners(pid); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenSignalClose(b *testing.B) {
	pid := os.Getpid()
	for b.Loop() {
		p, err := Open(pid)
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Signal(0); err != nil {
			b.Fatal(err)
		}
		p.Close()
	}
}
