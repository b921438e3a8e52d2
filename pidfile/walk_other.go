//go:build !linux

package pidfile

import (
	"io/fs"
	"os"
)

// open needs openat(2) with O_PATH and readlinkat(2) of an empty path.
func (r rules) open(path string, _ int, _ fs.FileMode) (*os.File, error) {
	return nil, &Error{Path: path, Err: unsupported()}
}
