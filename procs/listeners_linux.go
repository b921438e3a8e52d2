//go:build linux

package procs

import (
	"errors"
	"fmt"
	"slices"
)

// useDiag lets tests compare the sock_diag and /proc paths.
var useDiag = true

func listeners(pid int) ([]Listener, error) {
	d, err := openProcDir(pid)
	if err != nil {
		return nil, err
	}
	defer d.close()
	if err := stillLive(d); err != nil {
		return nil, err
	}
	socks, err := d.sockets()
	if err != nil {
		return nil, err
	}
	if len(socks) == 0 {
		return nil, stillLive(d)
	}

	// The tables of the process's own network namespace. Every socket is
	// in exactly one table, so reading stops once all of the process's
	// sockets were seen; unix first, as it is short and holds the
	// socketpairs masters keep to their workers.
	pending := make(map[uint64]bool, len(socks))
	for _, s := range socks {
		pending[s.inode] = true
	}
	table := make(map[uint64]netSocket)
	if err := readTable(d, "net/unix", "unix", pending, table); err != nil {
		return nil, err
	}
	if len(pending) > 0 && useDiag {
		if same, err := sameNetns(d); err != nil {
			return nil, fmt.Errorf("procs: listeners of %d: %w", pid, err)
		} else if same {
			if err := diagTCPListeners(table); err == nil {
				clear(pending)
			}
			// Else no inet_diag (module not loaded, netlink filtered):
			// read the tables.
		}
	}
	for _, t := range []struct {
		name, network string
	}{
		{"net/tcp", "tcp"},
		{"net/tcp6", "tcp6"},
	} {
		if len(pending) == 0 {
			break
		}
		if err := readTable(d, t.name, t.network, pending, table); err != nil {
			return nil, err
		}
	}
	var out []Listener
	for _, s := range socks {
		if ns, ok := table[s.inode]; ok {
			out = append(out, Listener{Inode: s.inode, FD: s.fd, Network: ns.network, Addr: ns.addr})
		}
	}
	slices.SortFunc(out, func(a, b Listener) int { return a.FD - b.FD })
	// Descriptors that vanished were skipped as closed: make sure it was not
	// the whole process that went away meanwhile.
	if err := stillLive(d); err != nil {
		return nil, err
	}
	return out, nil
}

// stillLive reports a goneError if d's process has exited by now.
func stillLive(d procDir) error {
	st, err := d.stat()
	if err != nil {
		return err
	}
	if st.Zombie() {
		return &goneError{pid: d.pid, zombie: true}
	}
	return nil
}

func readTable(d procDir, name, network string, pending map[uint64]bool, into map[uint64]netSocket) error {
	f, err := d.open(name)
	if errors.Is(err, ErrGone) {
		// ENOENT for a table means the protocol is not there (IPv6
		// disabled) if the process still is.
		return stillLive(d)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if network == "unix" {
		err = parseNetUnix(f, pending, into)
	} else {
		err = parseNetTCP(f, network, pending, into)
	}
	if err != nil {
		return fmt.Errorf("procs: %s: %w", d.path(name), err)
	}
	return nil
}
