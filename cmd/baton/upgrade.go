package main

import (
	"errors"

	"github.com/urfave/cli/v2"
)

// upgradeCommand is a placeholder until its issue lands.
func upgradeCommand() *cli.Command {
	return &cli.Command{
		Name:   "upgrade",
		Hidden: true,
		Action: func(*cli.Context) error { return errors.New("upgrade: not built yet") },
	}
}
