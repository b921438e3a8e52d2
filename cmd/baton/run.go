package main

import (
	"os"
	"strconv"

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
   USR1   reopen --log-file, pass USR1 to workers
   TTIN   one worker more            TTOU       one worker fewer

ADDR is 8080, :8080, 127.0.0.1:8080, [::1]:8080 or unix:/path.sock, optionally
NAME=ADDR. A --config file holds "key = value" lines with the flags' names;
flags win over it.

EXAMPLE:
   baton run --pidfile /run/app.pid --listen 127.0.0.1:8080 --workers 2 \
       --dir /srv/app/current --envfile /etc/app.env -- ./server --flag

` + exitCodesHelp,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "pidfile", Usage: "pid file, locked while the master runs", EnvVars: []string{"BATON_PIDFILE"}, Required: true},
			&cli.StringSliceFlag{Name: "listen", Usage: "`[NAME=]ADDR` to listen on (repeatable)", EnvVars: []string{"BATON_LISTEN"}},
			&cli.StringFlag{Name: "socket-mode", Usage: "octal mode of unix socket files, e.g. 0660 (default: umask)", EnvVars: []string{"BATON_SOCKET_MODE"}},
			&cli.IntFlag{Name: "workers", Usage: "number of workers", DefaultText: "1", EnvVars: []string{"BATON_WORKERS"}},
			&cli.StringFlag{Name: "dir", Usage: "directory workers start in, re-resolved at every start (default: current directory)", EnvVars: []string{"BATON_DIR"}},
			&cli.StringFlag{Name: "envfile", Usage: "KEY=VALUE file added to workers' environment, re-read at every start", EnvVars: []string{"BATON_ENVFILE"}},
			&cli.StringSliceFlag{Name: "env-drop", Usage: "variable workers must not inherit (repeatable)", EnvVars: []string{"BATON_ENV_DROP"}},
			&cli.StringFlag{Name: "ready", Usage: "readiness: notify or delay:DURATION (default delay:1s)", EnvVars: []string{"BATON_READY"}},
			&cli.StringFlag{Name: "stop-signal", Usage: "signal that stops a worker gracefully (default TERM)", EnvVars: []string{"BATON_STOP_SIGNAL"}},
			&cli.DurationFlag{Name: "stop-timeout", Usage: "time before a stopping worker is killed", DefaultText: "10s", EnvVars: []string{"BATON_STOP_TIMEOUT"}},
			&cli.StringFlag{Name: "user", Usage: "run workers as this user", EnvVars: []string{"BATON_USER"}},
			&cli.StringFlag{Name: "group", Usage: "run workers with this group", EnvVars: []string{"BATON_GROUP"}},
			&cli.StringFlag{Name: "log-file", Usage: "log here instead of stderr; reopened on USR1", EnvVars: []string{"BATON_LOG_FILE"}},
			&cli.StringFlag{Name: "config", Usage: "file of key = value lines with the flags' names, re-read on HUP and USR2", EnvVars: []string{"BATON_CONFIG"}},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usageErrorf("run: missing COMMAND; usage: baton run [flags] -- COMMAND [ARGS...]")
			}
			var mode os.FileMode
			if s := c.String("socket-mode"); s != "" {
				n, err := strconv.ParseUint(s, 8, 32)
				if err != nil || n > 0o777 {
					return usageErrorf("run: --socket-mode %q: want octal permission bits such as 0660", s)
				}
				mode = os.FileMode(n)
			}
			if c.Int("workers") < 0 {
				return usageErrorf("run: --workers %d: want at least 1", c.Int("workers"))
			}
			err := master.Run(c.Context, master.Options{
				PIDFile:     c.String("pidfile"),
				Listen:      c.StringSlice("listen"),
				SocketMode:  mode,
				Workers:     c.Int("workers"),
				Dir:         c.String("dir"),
				EnvFile:     c.String("envfile"),
				EnvDrop:     c.StringSlice("env-drop"),
				Ready:       c.String("ready"),
				StopSignal:  c.String("stop-signal"),
				StopTimeout: c.Duration("stop-timeout"),
				User:        c.String("user"),
				Group:       c.String("group"),
				LogFile:     c.String("log-file"),
				Config:      c.String("config"),
				Command:     c.Args().Slice(),
			})
			if err != nil {
				return withCode(exitCode(err, false), err)
			}
			return nil
		},
	}
}
