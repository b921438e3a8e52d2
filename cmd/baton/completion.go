package main

import (
	"fmt"
	"io"
	"slices"

	"github.com/urfave/cli/v2"
)

// completionShells are the shells `baton completion` writes a script for,
// in the order its usage names them.
var completionShells = []string{"bash", "zsh", "fish"}

// completionCommand is `baton completion bash|zsh|fish`. The bash and zsh
// scripts ask baton itself (urfave/cli's --generate-bash-completion, which
// prints the commands or flags that fit and runs no action), so they follow
// every command and flag; fish's script is generated from the command
// definitions (urfave/cli's ToFishCompletion).
func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script: bash, zsh or fish",
		ArgsUsage: "bash|zsh|fish",
		Description: `The Debian package installs all three. From a source install:
   bash: baton completion bash >/usr/local/share/bash-completion/completions/baton
         (or: source <(baton completion bash) in ~/.bashrc)
   zsh:  baton completion zsh >"${fpath[1]}/_baton"
   fish: baton completion fish >~/.config/fish/completions/baton.fish`,
		BashComplete: func(c *cli.Context) {
			if c.NArg() == 0 {
				for _, s := range completionShells {
					fmt.Fprintln(c.App.Writer, s)
				}
			}
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 || !slices.Contains(completionShells, c.Args().First()) {
				return usageErrorf("completion takes one shell: bash, zsh or fish")
			}
			return writeCompletion(c.App.Writer, c.App, c.Args().First())
		},
	}
}

// writeCompletion writes the completion script for shell.
func writeCompletion(w io.Writer, app *cli.App, shell string) error {
	var script string
	switch shell {
	case "bash":
		script = bashCompletion
	case "zsh":
		script = zshCompletion
	case "fish":
		var err error
		if script, err = app.ToFishCompletion(); err != nil {
			return fmt.Errorf("fish completion: %w", err)
		}
	}
	_, err := io.WriteString(w, script)
	return err
}

// bashCompletion completes baton's commands and flags by asking the baton
// being completed, and falls back to file names (pid files, configs). It
// needs nothing but bash; with the bash-completion package it also keeps
// "--check=http://..." in one word.
const bashCompletion = `# bash completion for baton (baton completion bash)
_baton() {
	local cur words cword
	if declare -F _get_comp_words_by_ref >/dev/null 2>&1; then
		_get_comp_words_by_ref -n =: cur words cword
	else
		cur=${COMP_WORDS[COMP_CWORD]}
		words=("${COMP_WORDS[@]}")
		cword=$COMP_CWORD
	fi
	local IFS=$'\n'
	local -a args=("${words[@]:0:cword}")
	[[ $cur == -* ]] && args+=("$cur")
	local opts
	opts=$("${args[@]}" --generate-bash-completion 2>/dev/null) || opts=
	# shellcheck disable=SC2207 # one completion per line, split on IFS
	COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -o bashdefault -o default -F _baton baton
`

// zshCompletion does the same for zsh: installed as _baton in $fpath it
// is autoloaded, sourced it registers itself.
const zshCompletion = `#compdef baton
# zsh completion for baton (baton completion zsh)
_baton() {
	local -a opts args
	args=("${(@)words[1,CURRENT-1]}")
	[[ ${words[CURRENT]} == -* ]] && args+=("${words[CURRENT]}")
	opts=("${(@f)$("${(@)args}" --generate-bash-completion 2>/dev/null)}")
	if [[ -n ${opts[1]} ]]; then
		_describe 'baton' opts
	else
		_files
	fi
}
if [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then
	_baton "$@"
else
	compdef _baton baton
fi
`
