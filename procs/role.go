package procs

import (
	"path"
	"strings"
)

// Role tells a master from a worker where the command line says which it is.
type Role uint8

const (
	RoleUnknown Role = iota
	RoleMaster
	RoleWorker
)

// String returns "unknown", "master" or "worker".
func (r Role) String() string {
	switch r {
	case RoleMaster:
		return "master"
	case RoleWorker:
		return "worker"
	}
	return "unknown"
}

// Role classifies the process from its command line. It knows the titles
// these servers give their processes:
//
//	nginx: master process /usr/sbin/nginx -c /etc/nginx/nginx.conf   master
//	nginx: worker process                                          worker
//	nginx: cache manager process                                   unknown
//	unicorn master -c unicorn.rb -E production                     master
//	unicorn master (old) -c unicorn.rb                             master
//	unicorn worker[3] -c unicorn.rb                                worker
//	rainbows master / rainbows worker[0]                           (as unicorn)
//	gunicorn: master [app:app]                                     master
//	gunicorn: worker [app:app]                                     worker
//	baton run --pidfile P -- cmd                                   master
//	baton: master / baton: worker                                  (titles)
//
// gunicorn sets its titles only when the Python setproctitle module is
// installed (Debian's python3-gunicorn does not depend on it); without it
// every gunicorn process reads "python3 /usr/bin/gunicorn ..." and the role is
// unknown: tell them apart by parentage instead (the master is the parent).
func (s Stat) Role() Role { return roleOf(s.Cmdline) }

func roleOf(argv []string) Role {
	if len(argv) == 0 {
		return RoleUnknown
	}
	// A rewritten title is one argv element holding spaces (or, with kernels
	// that show the rewritten area, several); treat it as words.
	title := strings.Join(argv, " ")
	for _, t := range []struct {
		prefix string
		role   Role
	}{
		{"nginx: master process", RoleMaster},
		{"nginx: worker process", RoleWorker},
		{"gunicorn: master", RoleMaster},
		{"gunicorn: worker", RoleWorker},
		{"baton: master", RoleMaster},
		{"baton: worker", RoleWorker},
	} {
		if hasWordPrefix(title, t.prefix) {
			return t.role
		}
	}
	words := strings.Fields(title)
	if len(words) >= 2 {
		switch path.Base(words[0]) {
		case "unicorn", "unicorn_rails", "rainbows":
			switch {
			case words[1] == "master":
				return RoleMaster
			case strings.HasPrefix(words[1], "worker[") && strings.HasSuffix(words[1], "]"):
				return RoleWorker
			}
		}
	}
	return batonRole(argv)
}

// hasWordPrefix reports whether title starts with prefix followed by the end
// or a space (so "nginx: worker processes" would not count).
func hasWordPrefix(title, prefix string) bool {
	rest, ok := strings.CutPrefix(title, prefix)
	return ok && (rest == "" || rest[0] == ' ')
}

// batonRole recognises "baton [global flags] run ...": baton's own master,
// also when its binary is a versioned copy ("baton-1.2", "baton.new"). The
// first argument after the program that is not a flag must be "run";
// arguments after "--" belong to the managed command.
func batonRole(argv []string) Role {
	base := path.Base(argv[0])
	if base != "baton" && !strings.HasPrefix(base, "baton-") && !strings.HasPrefix(base, "baton.") {
		return RoleUnknown
	}
	for _, a := range argv[1:] {
		if a == "--" {
			break
		}
		if strings.HasPrefix(a, "-") {
			continue
		}
		if a == "run" {
			return RoleMaster
		}
		break
	}
	return RoleUnknown
}
