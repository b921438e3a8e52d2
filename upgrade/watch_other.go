//go:build !linux

package upgrade

// watchDir is not supported here; waits fall back to polling.
func watchDir(string) (<-chan struct{}, func()) { return nil, func() {} }
