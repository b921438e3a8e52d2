package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// commands lists baton's commands; each lives in its own file.
func commands() []*cli.Command {
	return []*cli.Command{
		runCommand(),
		upgradeCommand(),
		demoCommand(),
		demoAppCommand(),
		versionCommand(),
	}
}

// isUsageError recognises the errors urfave/cli returns for bad flags and
// arguments, which it does not type.
func isUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"flag provided but not defined", "invalid value", "Required flag", "Required flags", "flag needs an argument"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
