//go:build linux

package upgrade

import (
	"os"
	"syscall"
	"unsafe"
)

// watchDir reports changes of the files in dir through inotify(7): pid
// files are created, renamed and removed there during an upgrade. The
// channel is a wake-up, not a record: receivers re-read what they need.
func watchDir(dir string) (<-chan struct{}, func()) {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		return nil, func() {}
	}
	const mask = syscall.IN_CREATE | syscall.IN_DELETE | syscall.IN_MOVED_FROM | syscall.IN_MOVED_TO | syscall.IN_CLOSE_WRITE
	if _, err := syscall.InotifyAddWatch(fd, dir, mask); err != nil {
		syscall.Close(fd)
		return nil, func() {}
	}
	// A non-blocking fd in an *os.File goes through the runtime poller, so
	// Close interrupts the blocked Read.
	f := os.NewFile(uintptr(fd), "inotify")
	ch := make(chan struct{}, 1)
	go func() {
		buf := make([]byte, 4096+syscall.SizeofInotifyEvent)
		for {
			n, err := f.Read(buf)
			if err != nil || n < int(unsafe.Sizeof(syscall.InotifyEvent{})) {
				return
			}
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	return ch, func() { f.Close() }
}
