package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"
)

// manCommand prints baton(1). The page is generated from the command
// definitions, the same text --help shows, so it cannot drift from the CLI;
// the Debian package installs what this command prints.
func manCommand() *cli.Command {
	return &cli.Command{
		Name:  "man",
		Usage: "print the baton(1) manual page (roff): baton man | man -l -",
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usageErrorf("man takes no arguments, not %q", c.Args().First())
			}
			return writeManPage(c.App.Writer, c.App)
		},
	}
}

// manSeeAlso is the SEE ALSO section: the masters baton drives and the tools
// the package's files plug into.
const manSeeAlso = `nginx(8), unicorn(1), gunicorn(1), systemctl(1), logrotate(8)`

// writeManPage writes app's manual page in man(7) roff: the usage and
// description of the app and of every visible command, each flag as --help
// shows it, the exit codes from exitCodes.
func writeManPage(w io.Writer, app *cli.App) error {
	var m roff
	m.line(`.TH BATON 1 "" "baton %s" "User Commands"`, roffEscape(app.Version))
	m.line(".nh")   // no hyphenation: flags and variables stay whole
	m.line(".ad l") // left-aligned: no stretched spaces between words
	m.section("NAME")
	m.text(app.Name + " - " + app.Usage)
	m.section("SYNOPSIS")
	m.line(`.B baton`)
	m.line(`\fIcommand\fR [\fIcommand options\fR] [\fIarguments\fR...]`)
	m.line(`.br`)
	m.line(`.B baton \-\-version`)
	m.section("DESCRIPTION")
	m.preformatted(withoutExitCodes(app.Description))
	m.section("OPTIONS")
	m.flags(app.VisibleFlags())
	m.section("COMMANDS")
	m.commands(app.Name, app.VisibleCommands())
	m.section("EXIT STATUS")
	for _, r := range exitCodes {
		m.line(".TP")
		m.line(`.B %d`, r.code)
		m.text(strings.ReplaceAll(r.meaning, "`", `"`))
	}
	m.section("ENVIRONMENT")
	m.text("Every option of run, upgrade and version can also be set by BATON_ followed by its name in upper case, " +
		"with - as _ (--pidfile is BATON_PIDFILE); the option on the command line wins.")
	m.section("SEE ALSO")
	m.text(manSeeAlso)
	m.line(".PP")
	m.text("The README, the systemd units, the init script and its defaults: /usr/share/doc/baton and /usr/share/baton " +
		"(Debian package), or https://github.com/batonhq/baton.")
	_, err := io.WriteString(w, m.String())
	return err
}

// withoutExitCodes drops the exit-code list that descriptions end with for
// --help: the page has an EXIT STATUS section instead.
func withoutExitCodes(desc string) string {
	return strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(desc), exitCodesHelp))
}

// roff builds a man(7) page.
type roff struct{ strings.Builder }

// line writes one raw roff line (a request, or text already escaped).
func (m *roff) line(format string, args ...any) {
	fmt.Fprintf(m, format+"\n", args...)
}

func (m *roff) section(name string) { m.line(".SH %s", name) }

// text writes s as filled text.
func (m *roff) text(s string) {
	for _, l := range strings.Split(s, "\n") {
		m.line("%s", roffLine(l))
	}
}

// preformatted writes s line for line, as --help prints it.
func (m *roff) preformatted(s string) {
	if s == "" {
		return
	}
	m.line(".nf")
	for _, l := range strings.Split(s, "\n") {
		m.line("%s", roffLine(l))
	}
	m.line(".fi")
}

// flags writes each flag as --help shows it: the names and value, then
// the usage with its default and variable.
func (m *roff) flags(flags []cli.Flag) {
	for _, f := range flags {
		term, usage, _ := strings.Cut(f.String(), "\t")
		m.line(".TP")
		m.line(`\fB%s\fR`, roffEscape(term))
		m.text(usage)
	}
}

// commands writes a subsection for each command under parent, then for its
// own commands.
func (m *roff) commands(parent string, cmds []*cli.Command) {
	for _, c := range cmds {
		name := parent + " " + c.Name
		m.line(".SS %s", roffEscape(name))
		usage := name
		if c.UsageText != "" {
			usage = c.UsageText
		} else if len(c.VisibleCommands()) > 0 {
			usage += " command [command options]"
		} else {
			if len(c.VisibleFlags()) > 0 {
				usage += " [options]"
			}
			if strings.TrimSpace(c.ArgsUsage) != "" {
				usage += " " + c.ArgsUsage
			}
		}
		m.line(`\fB%s\fR`, roffEscape(usage))
		m.line(".PP")
		m.text(c.Usage)
		if d := withoutExitCodes(c.Description); d != "" {
			m.line(".PP")
			m.preformatted(d)
		}
		if flags := c.VisibleFlags(); len(flags) > 0 {
			m.line(".PP")
			m.text("Options:")
			m.flags(flags)
		}
		m.commands(name, c.VisibleCommands())
	}
}

// roffEscape escapes text for roff: a backslash is \e, a hyphen \- (a minus
// sign that copies and searches as "-").
func roffEscape(s string) string {
	return strings.NewReplacer(`\`, `\e`, "-", `\-`).Replace(s)
}

// roffLine escapes a line of text; one that starts with a control
// character (. or ') or is empty gets a \& so that it stays text.
func roffLine(s string) string {
	s = roffEscape(s)
	if s == "" || s[0] == '.' || s[0] == '\'' {
		return `\&` + s
	}
	return s
}
