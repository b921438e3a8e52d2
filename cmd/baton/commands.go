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
		reloadCommand(),
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

// envVars names the environment variable that sets the flag name: BATON_
// and the name in upper case, '-' as '_' (--pidfile is BATON_PIDFILE).
// baton run's flags take theirs from master.RunOptions, by the same rule.
func envVars(name string) []string {
	return []string{"BATON_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))}
}

// commandName names the running command as typed after "baton": "upgrade
// start", "reload".
func commandName(c *cli.Context) string {
	return strings.TrimPrefix(c.Command.HelpName, c.App.Name+" ")
}
