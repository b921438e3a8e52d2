package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// buildInfo describes this binary.
type buildInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision,omitempty"`
	GoVersion string `json:"go"`
	Platform  string `json:"platform"`
}

func readBuildInfo() buildInfo {
	b := buildInfo{Version: version, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				b.Revision = s.Value
			}
		}
	}
	return b
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print baton's version",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print as JSON", EnvVars: envVars("json")},
		},
		Action: func(c *cli.Context) error {
			b := readBuildInfo()
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				return enc.Encode(b)
			}
			parts := []string{"baton", b.Version}
			if b.Revision != "" {
				parts = append(parts, "("+b.Revision+")")
			}
			parts = append(parts, b.GoVersion, b.Platform)
			_, err := fmt.Fprintln(c.App.Writer, strings.Join(parts, " "))
			return err
		},
	}
}
