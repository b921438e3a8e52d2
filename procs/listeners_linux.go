//go:build linux

package procs

import (
	"errors"
	"fmt"
	"slices"
)

func listeners(pid int) ([]Listener, error) {
	d, err := openProcDir(pid)
	if err != nil {
		return nil, err
	}
	defer d.close()
	if err := stillLive(d); err != nil {
		return nil, err
	}
	fdDir, err := d.sub("fd")
	if err != nil {
		return nil, err
	}
	defer fdDir.close()
	names, err := fdDir.names()
	if err != nil {
		return nil, err
	}
	type sock struct {
		fd    int
		inode uint64
	}
	var socks []sock
	for _, name := range names {
		fd, ok := parseDecimal(name)
		if !ok {
			continue
		}
		link, err := fdDir.readlink(name)
		if errors.Is(err, ErrGone) {
			// ENOENT: the descriptor was closed since the directory was
			// read; the process itself may be gone, which the table reads
			// below notice.
			continue
		}
		if err != nil {
			return nil, err
		}
		if inode, ok := socketInode(link); ok {
			socks = append(socks, sock{fd: fd, inode: inode})
		}
	}
	if len(socks) == 0 {
		return nil, stillLive(d)
	}

	// The tables of the process's own network namespace.
	table := make(map[uint64]netSocket)
	for _, t := range []struct {
		name, network string
	}{
		{"net/tcp", "tcp"},
		{"net/tcp6", "tcp6"},
		{"net/unix", "unix"},
	} {
		b, err := d.read(t.name)
		if errors.Is(err, ErrGone) {
			// ENOENT for a table means the protocol is not there (IPv6
			// disabled) if the process still is.
			if _, serr := d.stat(); serr != nil {
				return nil, serr
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		if t.network == "unix" {
			err = parseNetUnix(b, table)
		} else {
			err = parseNetTCP(b, t.network, table)
		}
		if err != nil {
			return nil, fmt.Errorf("procs: listeners of %d: %w", pid, err)
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
