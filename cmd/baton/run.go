package main

import (
	"github.com/urfave/cli/v2"

	"github.com/batonhq/baton/upgrade/master"
)

// runCommand is `baton run`: baton's own master for any program that can
// take its listening sockets from its parent.
func runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "run COMMAND as workers of a master that upgrades with the nginx signals",
		ArgsUsage: "-- COMMAND [ARGS...]",
		Description: `baton run binds the listeners (or inherits them from systemd or from the
previous master), starts --workers copies of COMMAND with the sockets at fds 3..
(LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES, SERVER_STARTER_PORT, BATON_GENERATION,
BATON_WORKER) and answers nginx's signals:

   USR2   start a new master from the baton program on disk, pid file -> .oldbin
   WINCH  stop the workers gracefully, keep the listeners
   HUP    re-read config and envfile, start a fresh generation, stop the old one
   QUIT   graceful shutdown          TERM, INT  fast shutdown
   USR1   reopen --log-file and --worker-log-file, pass USR1 to workers
   TTIN   one worker more            TTOU       one worker fewer

Workers' stdout and stderr go to the master's own, or with --worker-log-file
through a pipe per worker to that file, line by line, so that logrotate can
move it and send USR1 (the init script's rotate). --log-format json makes
the master's own log one JSON object per line.

ADDR is 8080, :8080, 127.0.0.1:8080, [::1]:8080 or unix:/path.sock, optionally
NAME=ADDR. A --config file holds "key = value" lines with the flags' names;
flags win over it.

EXAMPLE:
   baton run --pidfile /run/app.pid --listen 127.0.0.1:8080 --workers 2 \
       --dir /srv/app/current --envfile /etc/app.env -- ./server --flag

` + exitCodesHelp,
		Flags: runFlags(),
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usageErrorf("run: missing COMMAND; usage: baton run [flags] -- COMMAND [ARGS...]")
			}
			opts, err := runOptions(c)
			if err != nil {
				return err
			}
			opts.Command = c.Args().Slice()
			if err := master.Run(c.Context, opts); err != nil {
				return withCode(exitCode(err, false), err)
			}
			return nil
		},
	}
}

// runFlags makes a flag of each row of master.RunOptions. The flags are
// text: each row parses and checks its own values, as the config file's.
func runFlags() []cli.Flag {
	var flags []cli.Flag
	for _, o := range master.RunOptions() {
		if o.List {
			flags = append(flags, &cli.StringSliceFlag{Name: o.Name, Usage: o.Usage, DefaultText: o.Default(), EnvVars: []string{o.Env}, Required: o.Required})
		} else {
			flags = append(flags, &cli.StringFlag{Name: o.Name, Usage: o.Usage, DefaultText: o.Default(), EnvVars: []string{o.Env}, Required: o.Required})
		}
	}
	return flags
}

// runOptions stores the flags given (on the command line or by their
// variables) in master.Options; a flag not given stays at its zero value,
// which the config file or the default fills.
func runOptions(c *cli.Context) (master.Options, error) {
	var opts master.Options
	for _, o := range master.RunOptions() {
		if !c.IsSet(o.Name) {
			continue
		}
		values := []string{c.String(o.Name)}
		if o.List {
			values = c.StringSlice(o.Name)
		}
		for _, v := range values {
			if err := o.Set(&opts, v); err != nil {
				return opts, usageErrorf("run: --%s %q: %v", o.Name, v, err)
			}
		}
	}
	return opts, nil
}
