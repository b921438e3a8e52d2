package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"
)

// version is the release this binary was built from, set by the packaging
// with -ldflags "-X main.version=v1.2.3". Empty (a plain go build or go
// install): readBuildInfo falls back to the module version the go command
// recorded, which `go install github.com/batonhq/baton/cmd/baton@v1.2.3`
// sets to v1.2.3.
var version string

// devVersion is reported when neither -ldflags nor the go command named a
// version (a build from a work tree without VCS stamping).
const devVersion = "dev"

// buildInfo describes this binary.
type buildInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision,omitempty"`
	GoVersion string `json:"go"`
	Platform  string `json:"platform"`
}

// resolveVersion chooses the version to report: the one set at link time,
// else the main module's version as the go command recorded it ("(devel)"
// for a build inside the module's own tree says nothing), else devVersion.
func resolveVersion(linked, module string) string {
	switch {
	case linked != "":
		return linked
	case module != "" && module != "(devel)":
		return module
	}
	return devVersion
}

func readBuildInfo() buildInfo {
	b := buildInfo{Version: resolveVersion(version, ""), GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if info, ok := debug.ReadBuildInfo(); ok {
		b.Version = resolveVersion(version, info.Main.Version)
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
		Usage: "print baton's version (--version prints the version alone)",
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
