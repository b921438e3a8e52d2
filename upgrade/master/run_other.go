//go:build !linux

package master

import (
	"context"
	"errors"
	"fmt"
)

// run needs Linux: Pdeathsig, SO_PASSCRED and /proc.
func run(context.Context, Options) error {
	return fmt.Errorf("master: run: %w", errors.ErrUnsupported)
}
