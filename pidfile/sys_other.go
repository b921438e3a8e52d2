//go:build !linux

package pidfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// This package reads /proc/locks and relies on Linux flock(2) semantics;
// elsewhere every operation that needs them fails with errors.ErrUnsupported.

const procLocks = "/proc/locks"

var errWouldBlock = errors.New("pidfile: lock held by another process")

func tryLock(*os.File) error { return fmt.Errorf("pidfile: flock: %w", errors.ErrUnsupported) }

type fileKey struct {
	dev uint64
	ino uint64
}

func (k fileKey) major() uint64 { return 0 }
func (k fileKey) minor() uint64 { return 0 }

func keyOf(fs.FileInfo) (fileKey, uint32) { return fileKey{}, 0 }

func renameNoReplace(string, string) error {
	return fmt.Errorf("pidfile: rename: %w", errors.ErrUnsupported)
}

func procStart(int) (time.Time, error) {
	return time.Time{}, fmt.Errorf("pidfile: process start time: %w", errors.ErrUnsupported)
}

// unsupported fails every operation that needs flock(2) semantics,
// /proc/locks or Linux stat fields.
func unsupported() error { return fmt.Errorf("pidfile: %w", errors.ErrUnsupported) }
