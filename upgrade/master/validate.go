//go:build linux

package master

import (
	"errors"
	"fmt"
	"os"
	"os/user"
)

// MaxWorkers caps --workers, the config file's workers and TTIN: every
// worker is a process and a share of the listen backlog, and a typo (10000
// for 1000) or a loop of TTIN must not fork-bomb the machine as root.
const MaxWorkers = 1024

// validate checks what the configuration names on disk and its bounds,
// before anything is bound or started (at start, and for a HUP or USR2
// before it acts): the worker count, that --dir is a directory, and, unless
// envFrozen (an old master keeps the envfile values it read, see
// master.envFrozen), that --envfile reads and parses. Every error wraps
// ErrConfig (exit 2) and is one line naming the setting.
func validate(c *config, envFrozen bool) error {
	var errs []error
	if err := checkWorkers(c.workers); err != nil {
		errs = append(errs, err)
	}
	if err := checkDir(c.dir); err != nil {
		errs = append(errs, err)
	}
	if err := checkBootNice(c.bootNice); err != nil {
		errs = append(errs, err)
	}
	if c.envFile != "" && !envFrozen {
		if _, err := readEnvFile(c.envFile); err != nil {
			errs = append(errs, fmt.Errorf("%w: %w", ErrConfig, err))
		}
	}
	return joinErrors(errs)
}

// checkWorkers bounds the worker count.
func checkWorkers(n int) error {
	if n < 1 || n > MaxWorkers {
		return fmt.Errorf("%w: workers %d: want 1 to %d", ErrConfig, n, MaxWorkers)
	}
	return nil
}

// checkDir checks that the workers' directory exists and is a directory
// (followed through a symlink, as chdir(2) will at every worker start).
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%w: dir %s does not exist", ErrConfig, dir)
	case err != nil:
		return fmt.Errorf("%w: dir: %w", ErrConfig, err)
	case !fi.IsDir():
		return fmt.Errorf("%w: dir %s is not a directory", ErrConfig, dir)
	}
	return nil
}

// lookupUser finds --user by name, or by uid when it is all digits; an
// unknown name says so instead of reporting why it is not a number.
func lookupUser(name string) (*user.User, error) {
	return lookupID("user", name, user.Lookup, user.LookupId, func(err error) bool {
		var byName user.UnknownUserError
		var byID user.UnknownUserIdError
		return errors.As(err, &byName) || errors.As(err, &byID)
	})
}

// lookupGroup finds --group by name, or by gid when it is all digits.
func lookupGroup(name string) (*user.Group, error) {
	return lookupID("group", name, user.LookupGroup, user.LookupGroupId, func(err error) bool {
		var byName user.UnknownGroupError
		var byID user.UnknownGroupIdError
		return errors.As(err, &byName) || errors.As(err, &byID)
	})
}

// lookupID looks name up by name, then by id when it is all digits.
func lookupID[T any](kind, name string, byName, byID func(string) (T, error), unknown func(error) bool) (T, error) {
	v, err := byName(name)
	if err != nil && allDigits(name) {
		v, err = byID(name)
	}
	switch {
	case err == nil:
		return v, nil
	case unknown(err):
		return v, fmt.Errorf("%w: %s %q does not exist", ErrConfig, kind, name)
	default:
		return v, fmt.Errorf("%w: %s %q: %w", ErrConfig, kind, name, err)
	}
}
