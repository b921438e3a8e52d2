package main

import (
	"fmt"
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
		completionCommand(),
		manCommand(),
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

// unknownCommand is the usage error for name, which is not a command of c's
// command (the app's at the top level): it names the closest visible one,
// urfave/cli's suggestion by Jaro-Winkler similarity, if any is similar at
// all, and the help that lists them.
func unknownCommand(c *cli.Context, name string) error {
	msg := fmt.Sprintf("unknown command %q", name)
	if cli.SuggestCommand != nil {
		cmds := c.Command.VisibleCommands()
		s := cli.SuggestCommand(cmds, name)
		// SuggestCommand also weighs "help" and "h", which baton hides at
		// the top level: only a visible command other than name is offered.
		for _, cmd := range cmds {
			for _, n := range cmd.Names() {
				if n != name && s == fmt.Sprintf(cli.SuggestDidYouMeanTemplate, n) {
					msg += " (" + strings.ToLower(s[:1]) + s[1:] + ")"
				}
			}
		}
	}
	return usageErrorf("%s; see '%s --help'", msg, c.Command.HelpName)
}

// commandName names the running command as typed after "baton": "upgrade
// start", "reload".
func commandName(c *cli.Context) string {
	return strings.TrimPrefix(c.Command.HelpName, c.App.Name+" ")
}
