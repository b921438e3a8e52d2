package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// nobodyUID owns the files "another user" planted (the tests run as root).
const nobodyUID = 65534

// hostileKind is one way another user (or a careless one) can leave a file
// that baton must not believe: plant writes content at path that way and
// returns the file that must stay untouched behind it ("" for none).
type hostileKind struct {
	name  string
	plant func(t *testing.T, path, content string) (victim string)
}

func chownMode(t testing.TB, path string, uid int, mode os.FileMode) {
	t.Helper()
	if err := os.Lchown(path, uid, 0); err != nil {
		t.Fatal(err)
	}
	if mode != 0 {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
}

var hostileKinds = []hostileKind{
	{"symlink", func(t *testing.T, path, content string) string {
		victim := path + ".victim"
		writeFile(t, victim, content, 0o644)
		if err := os.Symlink(victim, path); err != nil {
			t.Fatal(err)
		}
		chownMode(t, path, nobodyUID, 0)
		return victim
	}},
	{"foreign-owned", func(t *testing.T, path, content string) string {
		writeFile(t, path, content, 0o644)
		chownMode(t, path, nobodyUID, 0o644)
		return ""
	}},
	{"group-writable", func(t *testing.T, path, content string) string {
		writeFile(t, path, content, 0o644)
		chownMode(t, path, 0, 0o664)
		return ""
	}},
	{"hard-linked", func(t *testing.T, path, content string) string {
		victim := path + ".victim"
		writeFile(t, victim, content, 0o644)
		if err := os.Link(victim, path); err != nil {
			t.Fatal(err)
		}
		return victim
	}},
	{"fifo", func(t *testing.T, path, _ string) string {
		if err := syscall.Mkfifo(path, 0o644); err != nil {
			t.Fatal(err)
		}
		return ""
	}},
	{"huge", func(t *testing.T, path, content string) string {
		writeFile(t, path, content+strings.Repeat(" ", 2<<20), 0o644)
		return ""
	}},
}

// hostileTarget is a file baton reads during `upgrade start`: where it is
// for peer p, and what a hostile copy says (naming the witness).
type hostileTarget struct {
	name    string
	path    func(p *peer) string
	content func(witness int) string
	// own: the target is the pid file itself, planted at a path of its own
	// that `upgrade start` is pointed at; else it sits beside the real
	// master's pid file and `upgrade start` is pointed at that.
	own bool
}

var hostileTargets = []hostileTarget{
	{
		name:    "pidfile",
		path:    func(p *peer) string { return filepath.Join(p.dir, "hostile.pid") },
		content: func(w int) string { return fmt.Sprintf("%d\n", w) },
		own:     true,
	},
	{
		name: "oldbin",
		path: func(p *peer) string {
			if p.flavor == flavorGunicorn {
				return p.pidfile + ".2"
			}
			return p.pidfile + ".oldbin"
		},
		content: func(w int) string { return fmt.Sprintf("%d\n", w) },
	},
	{
		name: "journal",
		path: func(p *peer) string { return p.pidfile + ".upgrade.json" },
		content: func(w int) string {
			return fmt.Sprintf(`{"state":"drained","old":{"pid":%d,"start":1},"new":{"pid":%d,"start":1}}`, w, w)
		},
	},
	{
		name:    "lock",
		path:    func(p *peer) string { return p.pidfile + ".upgrade.lock" },
		content: func(w int) string { return fmt.Sprintf("%d\n", w) },
	},
}

// TestFaultHostileFiles plants, for every file `baton upgrade start` reads
// — the pid file, the .oldbin (gunicorn's .2), the journal and the lock —
// each kind of file another user could have planted or that baton must not
// trust: a foreign symlink, a foreign-owned file, a group-writable one, a
// hard link, a FIFO, a huge one. Each is refused with exit 2 and an error
// naming the file; nothing is signalled (the witness process the files name
// records no signal, the master keeps the very same workers); the file
// behind a symlink or hard link is not changed.
//
// The baton master's status file is read the same way
// (pidfile.Options.ReadState, unit-tested in pidfile).
func TestFaultHostileFiles(t *testing.T) {
	forEachFlavor(t, func(ctx context.Context, t *testing.T, p *peer, tr *traffic) {
		before := p.snapshot(t)
		record := filepath.Join(p.dir, "witness.signals")
		witness := startWitness(ctx, t, record)
		for _, target := range hostileTargets {
			for _, kind := range hostileKinds {
				if target.name == "lock" && kind.name == "huge" {
					continue // a lock file's size says nothing: baton empties it
				}
				t.Run(target.name+"/"+kind.name, func(t *testing.T) {
					path := target.path(p)
					os.Remove(path) // a journal or lock of an earlier run
					content := target.content(witness)
					victim := kind.plant(t, path, content)
					defer func() {
						os.Remove(path)
						if victim != "" {
							os.Remove(victim)
						}
					}()
					pidfile := p.pidfile
					if target.own {
						pidfile = path
					}
					r := batonCmd(ctx, t, "upgrade", "start", "--pidfile", pidfile, "--flavor", string(p.flavor),
						"--check", p.check(), "--commit")
					r.wantCode(t, 2)
					if !strings.Contains(r.Stderr+r.Stdout, filepath.Base(path)) {
						t.Errorf("the refusal does not name %s:\n%s%s", filepath.Base(path), r.Stdout, r.Stderr)
					}
					if data, _ := os.ReadFile(record); len(data) > 0 {
						t.Errorf("the witness %d received signals: %q", witness, data)
					}
					if !alive(witness) {
						t.Fatalf("the witness %d is gone", witness)
					}
					if victim != "" {
						if data, err := os.ReadFile(victim); err != nil || string(data) != content {
							t.Errorf("%s behind the %s was changed: %.40q, %v", filepath.Base(victim), kind.name, data, err)
						}
					}
					if after := p.snapshot(t); after.master != before.master || fmt.Sprint(after.workers) != fmt.Sprint(before.workers) {
						t.Fatalf("the master was touched: before %+v, after %+v", before, after)
					}
				})
			}
		}
		p.wantUntouched(t, before)
		p.finish(ctx, t, tr, "v1", before.master, "v1")
	})
}
