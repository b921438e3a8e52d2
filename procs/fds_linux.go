//go:build linux

package procs

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

func environ(id Identity) ([]string, error) {
	d, err := openIdentityDir(id)
	if err != nil {
		return nil, err
	}
	defer d.close()
	b, err := d.read("environ")
	if err != nil {
		return nil, err
	}
	// A process that became a zombie meanwhile reads empty: say it is gone
	// rather than that it had no environment.
	if err := stillLive(d); err != nil {
		return nil, err
	}
	return splitEnviron(b), nil
}

func fdTarget(id Identity, fd int) (string, error) {
	if fd < 0 {
		return "", fmt.Errorf("procs: invalid fd %d", fd)
	}
	d, err := openIdentityDir(id)
	if err != nil {
		return "", err
	}
	defer d.close()
	name := "fd/" + strconv.Itoa(fd)
	target, err := d.readlink(name)
	if errors.Is(err, ErrGone) {
		// ENOENT: the descriptor is not open, unless the process is gone.
		if err := stillLive(d); err != nil {
			return "", err
		}
		return "", &fs.PathError{Op: "readlink", Path: d.path(name), Err: unix.ENOENT}
	}
	return target, err
}

func socketHolders(inodes []uint64) ([]Identity, error) {
	if len(inodes) == 0 {
		return nil, nil
	}
	want := make(map[uint64]bool, len(inodes))
	for _, ino := range inodes {
		want[ino] = true
	}
	pids, err := allPIDs()
	if err != nil {
		return nil, fmt.Errorf("procs: socket holders: %w", err)
	}
	var out []Identity
	for _, pid := range pids {
		id, ok, err := holdsSocket(pid, want)
		if err != nil {
			return nil, fmt.Errorf("procs: socket holders: %w", err)
		}
		if ok {
			out = append(out, id)
		}
	}
	return out, nil
}

// holdsSocket reports whether the live process pid holds a socket in want,
// and its identity. A process that is gone or whose descriptors the caller
// may not read holds none.
func holdsSocket(pid int, want map[uint64]bool) (Identity, bool, error) {
	d, err := openProcDir(pid)
	if errors.Is(err, ErrGone) {
		return Identity{}, false, nil
	}
	if err != nil {
		return Identity{}, false, err
	}
	defer d.close()
	socks, err := d.sockets()
	if errors.Is(err, ErrGone) || errors.Is(err, fs.ErrPermission) {
		return Identity{}, false, nil
	}
	if err != nil {
		return Identity{}, false, err
	}
	if !slices.ContainsFunc(socks, func(s fdSocket) bool { return want[s.inode] }) {
		return Identity{}, false, nil
	}
	st, err := d.stat()
	if errors.Is(err, ErrGone) || err == nil && st.Zombie() {
		return Identity{}, false, nil
	}
	if err != nil {
		return Identity{}, false, err
	}
	return st.Identity(), true, nil
}

func sockets(pid int) ([]Socket, error) {
	d, err := openProcDir(pid)
	if err != nil {
		return nil, err
	}
	defer d.close()
	socks, err := d.sockets()
	if err != nil {
		return nil, err
	}
	// Descriptors that vanished were skipped as closed: make sure it was
	// not the whole process that went away meanwhile.
	if err := stillLive(d); err != nil {
		return nil, err
	}
	out := make([]Socket, len(socks))
	for i, s := range socks {
		out[i] = Socket{FD: s.fd, Inode: s.inode}
	}
	slices.SortFunc(out, func(a, b Socket) int { return a.FD - b.FD })
	return out, nil
}

// fdSocket is a descriptor of a process that refers to a socket.
type fdSocket struct {
	fd    int
	inode uint64
}

// sockets lists the socket descriptors of d's process. A descriptor closed
// while the list is built is left out; the process may be gone then, which
// the caller checks if it matters.
func (d procDir) sockets() ([]fdSocket, error) {
	names, err := d.subNames("fd")
	if err != nil {
		return nil, err
	}
	var socks []fdSocket
	for _, name := range names {
		fd, ok := parseDecimal(name)
		if !ok {
			continue
		}
		link, err := d.readlink("fd/" + name)
		if errors.Is(err, ErrGone) {
			continue // ENOENT: closed since the directory was read
		}
		if err != nil {
			return nil, err
		}
		if inode, ok := socketInode(link); ok {
			socks = append(socks, fdSocket{fd: fd, inode: inode})
		}
	}
	return socks, nil
}
