package main

import (
	"github.com/urfave/cli/v2"

	"github.com/batonhq/baton/upgrade"
)

// reloadCommand is `baton reload`: what "systemctl reload" runs (the
// shipped units' ExecReload=).
func reloadCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "mode", Value: upgrade.ReloadAuto.String(), Usage: "auto: the binary upgrade when the running binary was replaced on disk, else a configuration reload; config or binary force either", EnvVars: envVars("mode")},
	}
	for _, f := range upgradeStartCommand().Flags {
		if f.Names()[0] != "commit" { // a reload always commits
			flags = append(flags, f)
		}
	}
	return &cli.Command{
		Name:      "reload",
		Usage:     "reload a running master: its configuration, or its binary when that was replaced on disk",
		ArgsUsage: " ",
		Description: `What "systemctl reload" means to certbot, Ansible handlers and "nginx -s
reload" habits after a configuration change, without a new master every time:

   the running binary is the one on disk
             a configuration reload: the --preflight command (the
             configuration test, "nginx -t") must pass, then HUP; baton
             waits up to --spawn-timeout for the master's new workers (a
             baton master: its new generation ready), then for the checks
   the binary was replaced on disk (a package upgrade, a new build
   installed over it: "baton upgrade status" says "binary replaced")
             the checked binary upgrade, 'baton upgrade start --commit'
             with the same flags: rolled back on failure

--mode config or --mode binary forces either (a release switched by a
symlink, a new envfile under the same binary: --mode binary).

A failed configuration test signals nothing (exit 2). A master that refuses
the configuration or starts no new workers in time keeps serving as it did
(exit 1). After a configuration reload there is no old configuration to
return to: checks that keep failing exit 4.

EXAMPLES:
   baton reload --pidfile /run/nginx.pid --preflight '/usr/sbin/nginx -t -q' \
       --check http://127.0.0.1/
   baton reload --pidfile /run/baton/app.pid --check http://127.0.0.1:8080/health
   baton reload --pidfile /run/baton/app.pid --mode binary

` + exitCodesHelp,
		Flags: flags,
		Action: machineAction(func(c *cli.Context) (upgrade.Options, error) {
			opts, err := startOptions(c)
			if err != nil {
				return opts, err
			}
			if opts.Reload, err = upgrade.ParseReloadMode(c.String("mode")); err != nil {
				return opts, withCode(exitUsage, err)
			}
			opts.Commit = true
			return opts, nil
		}, (*upgrade.Machine).Reload),
	}
}
