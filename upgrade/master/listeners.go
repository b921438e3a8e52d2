//go:build linux

package master

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// listenSpec is one parsed --listen value: [NAME=]ADDR.
type listenSpec struct {
	Name string // "" when unnamed
	// Exactly one of the following describes the address.
	Unix string         // socket path, or "@name" for the abstract namespace
	Addr netip.AddrPort // TCP; Addr() is invalid for a wildcard port
}

// wildcard reports a TCP spec without a host ("8080", ":8080").
func (s listenSpec) wildcard() bool { return s.Unix == "" && !s.Addr.Addr().IsValid() }

// String formats the spec so that parseListen accepts it again.
func (s listenSpec) String() string {
	var a string
	switch {
	case s.Unix != "":
		a = "unix:" + s.Unix
	case s.wildcard():
		a = ":" + strconv.Itoa(int(s.Addr.Port()))
	default:
		a = s.Addr.String()
	}
	if s.Name != "" {
		return s.Name + "=" + a
	}
	return a
}

// maxUnixPath is the room in sockaddr_un.sun_path, less the terminating NUL.
const maxUnixPath = 107

// parseListen parses "[NAME=]ADDR" where ADDR is "8080", ":8080",
// "127.0.0.1:8080", "[::1]:8080", "unix:/path.sock" or "unix:@abstract".
// Host names are refused: a listener must not depend on DNS at boot. A
// relative unix path is resolved against cwd.
func parseListen(spec, cwd string) (listenSpec, error) {
	var s listenSpec
	addr := spec
	if i := strings.IndexByte(spec, '='); i >= 0 && !strings.ContainsAny(spec[:i], ":/[") {
		s.Name, addr = spec[:i], spec[i+1:]
		if why := badListenName(s.Name); why != "" {
			return listenSpec{}, badListen(spec, why)
		}
	}
	var why string
	switch p, unix := strings.CutPrefix(addr, "unix:"); {
	case addr == "":
		why = "empty address"
	case unix:
		s.Unix, why = parseUnixPath(p, cwd)
	default:
		s.Addr, why = parseInetAddr(addr)
	}
	if why != "" {
		return listenSpec{}, badListen(spec, why)
	}
	return s, nil
}

// badListen is the error for a --listen spec that cannot be used.
func badListen(spec, why string) error {
	return fmt.Errorf("%w %q: %s", ErrBadListen, spec, why)
}

// badListenName says what is wrong with a listener's name, "" if nothing.
func badListenName(name string) string {
	if name == "" {
		return "empty name before '='"
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return "a name may hold only letters, digits, '_', '-' and '.'"
		}
	}
	if len(name) > 255 {
		return "name longer than 255 bytes"
	}
	return ""
}

// parseUnixPath resolves a unix socket path (after "unix:") against cwd;
// "@NAME" is the abstract namespace. why says what is wrong, "" if nothing.
func parseUnixPath(p, cwd string) (path, why string) {
	switch {
	case p == "" || p == "@":
		return "", "empty unix socket path"
	case strings.ContainsRune(p, 0):
		return "", "NUL in unix socket path"
	case p[0] == '@':
	default:
		if !filepath.IsAbs(p) {
			p = filepath.Join(cwd, p)
		}
		p = filepath.Clean(p)
		if strings.HasSuffix(p, "/") {
			return "", "unix socket path names a directory"
		}
	}
	if len(p) > maxUnixPath {
		return "", fmt.Sprintf("unix socket path longer than %d bytes", maxUnixPath)
	}
	return p, ""
}

// parseInetAddr parses PORT, :PORT, IPV4:PORT or [IPV6]:PORT (no names, no
// zones). why says what is wrong, "" if nothing.
func parseInetAddr(addr string) (ap netip.AddrPort, why string) {
	if allDigits(addr) {
		addr = ":" + addr
	}
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return ap, "want PORT, :PORT, HOST:PORT, [IPV6]:PORT or unix:/PATH"
	}
	host, port := addr[:i], addr[i+1:]
	n, err := parsePort(port)
	if err != nil {
		return ap, err.Error()
	}
	if host == "" {
		return netip.AddrPortFrom(netip.Addr{}, n), ""
	}
	if h, ok := strings.CutPrefix(host, "["); ok {
		h, ok = strings.CutSuffix(h, "]")
		if !ok {
			return ap, "missing ']' after IPv6 address"
		}
		ip, err := netip.ParseAddr(h)
		if err != nil || !ip.Is6() || ip.Is4In6() || ip.Zone() != "" {
			return ap, "not an IPv6 address (zones are not supported)"
		}
		return netip.AddrPortFrom(ip, n), ""
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Is4() {
		return ap, "host must be an IPv4 address or a bracketed IPv6 address, not a name"
	}
	return netip.AddrPortFrom(ip, n), ""
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func parsePort(s string) (uint16, error) {
	if !allDigits(s) || len(s) > 5 {
		return 0, errors.New("port must be a number from 0 to 65535")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > 65535 {
		return 0, errors.New("port must be a number from 0 to 65535")
	}
	return uint16(n), nil
}

// parseListens parses every spec, reporting all bad ones at once, and
// refuses the same address twice.
func parseListens(specs []string, cwd string) ([]listenSpec, error) {
	var out []listenSpec
	var errs []error
	seen := map[string]bool{}
	for _, raw := range specs {
		s, err := parseListen(raw, cwd)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		key := s.key()
		if seen[key] && !strings.HasSuffix(key, ":0") {
			errs = append(errs, fmt.Errorf("%w %q: listed twice", ErrBadListen, raw))
			continue
		}
		seen[key] = true
		out = append(out, s)
	}
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: at least one --listen is required", ErrBadListen)
	}
	return out, nil
}

// key identifies the address of a spec, without its name.
func (s listenSpec) key() string {
	c := s
	c.Name = ""
	return c.String()
}

// listener is one listening socket the master holds (close-on-exec) and
// hands to every worker and to the next master.
type listener struct {
	spec    listenSpec // what it was configured as
	file    *os.File
	network string // "tcp", "tcp6" or "unix"
	addr    string // the bound address, from getsockname
	inode   uint64 // the socket's inode, as /proc/PID/fd shows it
	// owned is set for a unix socket file that baton created (not systemd):
	// the last master out unlinks it, if it still is the same file.
	owned       bool
	fileDev     uint64
	fileIno     uint64
	fromParent  bool // inherited from the previous baton master
	fromSystemd bool
}

// starterAddr formats the address as Server::Starter writes it in
// SERVER_STARTER_PORT: "8080" for a wildcard port, "127.0.0.1:8080" or
// "[::1]:8080" for a host, the path for a unix socket.
func (l *listener) starterAddr() string {
	if l.network == "unix" {
		return l.addr
	}
	ap, err := netip.ParseAddrPort(l.addr)
	if err != nil {
		return l.addr
	}
	if l.spec.wildcard() || ap.Addr().IsUnspecified() {
		return strconv.Itoa(int(ap.Port()))
	}
	return l.addr
}

// fdName is the listener's LISTEN_FDNAMES entry; sd_listen_fds_with_names
// reports "unknown" for an unnamed socket, and so does baton.
func (l *listener) fdName() string {
	if l.spec.Name == "" {
		return "unknown"
	}
	return l.spec.Name
}

// inherited describes one listener passed to the next master in
// EnvInheritFDs; FD is its number in the new master.
type inherited struct {
	FD      int    `json:"fd"`
	Spec    string `json:"spec"`
	Owned   bool   `json:"owned,omitempty"`
	FileDev uint64 `json:"dev,omitempty"`
	FileIno uint64 `json:"ino,omitempty"`
	Systemd bool   `json:"systemd,omitempty"`
}

// sockInfo reads what a socket fd is: it must be a listening stream socket.
func sockInfo(fd int) (network, addr string, inode uint64, err error) {
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return "", "", 0, fmt.Errorf("fd %d is not a socket: %w", fd, err)
	}
	if typ != unix.SOCK_STREAM {
		return "", "", 0, fmt.Errorf("fd %d is not a stream socket", fd)
	}
	acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil || acc != 1 {
		return "", "", 0, fmt.Errorf("fd %d is not listening", fd)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return "", "", 0, fmt.Errorf("getsockname fd %d: %w", fd, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "", "", 0, fmt.Errorf("fstat fd %d: %w", fd, err)
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return "tcp", netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)).String(), st.Ino, nil
	case *unix.SockaddrInet6:
		return "tcp6", netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port)).String(), st.Ino, nil
	case *unix.SockaddrUnix:
		name := sa.Name
		if strings.HasPrefix(name, "\x00") {
			name = "@" + name[1:]
		}
		return "unix", name, st.Ino, nil
	}
	return "", "", 0, fmt.Errorf("fd %d: unsupported socket family", fd)
}

// matches reports whether a socket bound at (network, addr) serves spec s.
func (s listenSpec) matches(network, addr string) bool {
	if s.Unix != "" {
		return network == "unix" && addr == s.Unix
	}
	if network == "unix" {
		return false
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return false
	}
	if s.Addr.Port() != 0 && s.Addr.Port() != ap.Port() {
		return false
	}
	if s.wildcard() {
		return ap.Addr().IsUnspecified()
	}
	return s.Addr.Addr() == ap.Addr().Unmap()
}

// newListener wraps an inherited fd after checking it.
func newListener(fd int, name string) (*listener, error) {
	network, addr, ino, err := sockInfo(fd)
	if err != nil {
		return nil, err
	}
	unix.CloseOnExec(fd)
	return &listener{file: os.NewFile(uintptr(fd), name), network: network, addr: addr, inode: ino}, nil
}

// somaxconn is the listen backlog: the kernel's limit, as Go's net package uses.
func somaxconn() int {
	data, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && n > 0 {
			return n
		}
	}
	return unix.SOMAXCONN
}

// bind creates, binds and listens on a fresh socket for s. A stale unix
// socket file (nobody accepting) is replaced; a live one is an error.
func bind(s listenSpec, mode os.FileMode) (*listener, error) {
	var (
		fd  int
		err error
		sa  unix.Sockaddr
	)
	switch {
	case s.Unix != "":
		if s.Unix[0] != '@' {
			if err := removeStaleSocket(s.Unix); err != nil {
				return nil, err
			}
			sa = &unix.SockaddrUnix{Name: s.Unix}
		} else {
			sa = &unix.SockaddrUnix{Name: "\x00" + s.Unix[1:]}
		}
		fd, err = unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	case s.wildcard():
		// Like Go's net.Listen(":port"): dual stack on [::] if IPv6 works.
		fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			if err = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
				unix.Close(fd)
			}
		}
		if err == nil {
			sa = &unix.SockaddrInet6{Port: int(s.Addr.Port())}
		} else {
			fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			sa = &unix.SockaddrInet4{Port: int(s.Addr.Port())}
		}
	case s.Addr.Addr().Is4():
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		sa = &unix.SockaddrInet4{Port: int(s.Addr.Port()), Addr: s.Addr.Addr().As4()}
	default:
		fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			// An explicit IPv6 address never serves IPv4.
			if err = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
				unix.Close(fd)
			}
		}
		sa = &unix.SockaddrInet6{Port: int(s.Addr.Port()), Addr: s.Addr.Addr().As16()}
	}
	if err != nil {
		return nil, fmt.Errorf("master: listen %s: socket: %w", s, err)
	}
	fail := func(op string, err error) (*listener, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("master: listen %s: %s: %w", s, op, err)
	}
	if s.Unix == "" {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return fail("SO_REUSEADDR", err)
		}
	}
	l := &listener{spec: s}
	if op, err := bindSocket(fd, sa, l, mode); err != nil {
		return fail(op, err)
	}
	if err := unix.Listen(fd, somaxconn()); err != nil {
		if l.owned {
			os.Remove(s.Unix)
		}
		return fail("listen", err)
	}
	l.network, l.addr, l.inode, err = sockInfo(fd)
	if err != nil {
		return fail("inspect", err)
	}
	l.file = os.NewFile(uintptr(fd), s.String())
	return l, nil
}

// candidate is an inherited socket waiting to be matched to a spec.
type candidate struct {
	l    *listener
	spec string // the spec the previous master bound it for, "" from systemd
	name string // LISTEN_FDNAMES entry from systemd
}

// inheritFromParent takes the listeners a previous baton master passed in
// EnvInheritFDs. Every described fd must be a listening socket: a broken
// hand-over is an error, never silently dropped.
func inheritFromParent(value string) ([]candidate, error) {
	var list []inherited
	if err := json.Unmarshal([]byte(value), &list); err != nil {
		return nil, fmt.Errorf("master: %s: %w", EnvInheritFDs, err)
	}
	var out []candidate
	for _, in := range list {
		l, err := newListener(in.FD, in.Spec)
		if err != nil {
			return nil, fmt.Errorf("master: %s: %w", EnvInheritFDs, err)
		}
		if l.spec, err = parseListen(in.Spec, "/"); err != nil {
			l.file.Close()
			return nil, fmt.Errorf("master: %s: %w", EnvInheritFDs, err)
		}
		l.owned, l.fileDev, l.fileIno = in.Owned, in.FileDev, in.FileIno
		l.fromParent, l.fromSystemd = true, in.Systemd
		out = append(out, candidate{l: l, spec: in.Spec})
	}
	return out, nil
}

// inheritFromSystemd takes sockets passed by systemd socket activation
// (sd_listen_fds(3)) when LISTEN_PID names this process.
func inheritFromSystemd(pid int, env func(string) string) ([]candidate, error) {
	if env(EnvListenPID) == "" || env(EnvListenFDs) == "" {
		return nil, nil
	}
	lp, err := strconv.Atoi(env(EnvListenPID))
	if err != nil || lp != pid {
		return nil, nil // meant for another process
	}
	n, err := strconv.Atoi(env(EnvListenFDs))
	if err != nil || n < 0 {
		return nil, fmt.Errorf("master: %s=%q is not a count", EnvListenFDs, env(EnvListenFDs))
	}
	names := strings.Split(env(EnvListenFDNames), ":")
	var out []candidate
	for i := range n {
		fd := listenFDsStart + i
		name := ""
		if i < len(names) {
			name = names[i]
		}
		l, err := newListener(fd, "systemd:"+name)
		if err != nil {
			return nil, fmt.Errorf("master: socket activation: %w", err)
		}
		l.fromSystemd = true
		out = append(out, candidate{l: l, name: name})
	}
	return out, nil
}

// listenFDsStart is SD_LISTEN_FDS_START.
const listenFDsStart = 3

// reconcile gives every spec a socket: the inherited one matching it (the
// spec it was bound for, else its name and getsockname address), else a
// fresh bind. Inherited sockets no spec wants are returned to be closed.
// On a bind error, nothing bound here is left open.
func reconcile(specs []listenSpec, have []candidate, mode os.FileMode) (use, unused []*listener, err error) {
	taken := make([]bool, len(have))
	pick := func(ok func(c candidate) bool) *listener {
		for i, c := range have {
			if !taken[i] && ok(c) {
				taken[i] = true
				return c.l
			}
		}
		return nil
	}
	var fresh []*listener
	for _, s := range specs {
		l := pick(func(c candidate) bool { return c.spec != "" && c.spec == s.String() })
		if l == nil {
			l = pick(func(c candidate) bool {
				return (s.Name == "" || c.name == "" || c.name == s.Name) && s.matches(c.l.network, c.l.addr)
			})
		}
		if l == nil {
			l, err = bind(s, mode)
			if err != nil {
				for _, f := range fresh {
					f.close(true)
				}
				return nil, nil, err
			}
			fresh = append(fresh, l)
		}
		l.spec = s
		use = append(use, l)
	}
	for i, c := range have {
		if !taken[i] {
			unused = append(unused, c.l)
		}
	}
	return use, unused, nil
}

// close closes the master's copy; with unlink, an owned socket file goes too.
func (l *listener) close(unlink bool) error {
	err := l.file.Close()
	if unlink {
		err = errors.Join(err, l.unlinkIfOwned())
	}
	return err
}

// deferAccept sets TCP_DEFER_ACCEPT to d (rounded up to whole seconds; zero
// turns it off) on the TCP listeners in ls that baton bound, here or in a
// previous master, so a configuration change takes effect on upgrade and
// HUP. Sockets systemd passed are the socket unit's to configure.
func deferAccept(ls []*listener, d time.Duration) error {
	secs := int((d + time.Second - 1) / time.Second)
	for _, l := range ls {
		if l.network == "unix" || l.fromSystemd {
			continue
		}
		rc, err := l.file.SyscallConn()
		if err == nil {
			ctlErr := rc.Control(func(fd uintptr) {
				err = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, secs)
			})
			err = cmp.Or(ctlErr, err)
		}
		if err != nil {
			return fmt.Errorf("master: listen %s: TCP_DEFER_ACCEPT: %w", l.spec, err)
		}
	}
	return nil
}
