//go:build linux

package master

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// systemd is the master's side of sd_notify(3) towards systemd. It sends
// nothing when NOTIFY_SOCKET is unset.
type systemd struct {
	log *slog.Logger
}

// notify sends state lines ("READY=1", "MAINPID=123\nREADY=1", ...).
func (s systemd) notify(state string) {
	sent, err := daemon.SdNotify(false, state)
	if err != nil {
		s.log.Warn("sd_notify failed", "state", state, "err", err)
		return
	}
	if sent {
		s.log.Debug("sd_notify", "state", state)
	}
}

// notifyMsg is one datagram received on baton's own notify socket.
type notifyMsg struct {
	pid    int               // the sender, from SCM_CREDENTIALS
	fields map[string]string // KEY=VALUE lines
}

// notifySocket is the NOTIFY_SOCKET baton gives its workers with --ready
// notify: a unixgram socket with SO_PASSCRED, so that the kernel names the
// sender of every datagram and a worker cannot speak for another.
type notifySocket struct {
	path string // as put in NOTIFY_SOCKET; "@..." is abstract
	conn *net.UnixConn
	file bool // path is a file to remove
}

// listenNotify opens the socket at path, or in the abstract namespace when
// path does not fit in a sockaddr_un.
func listenNotify(path string, pid int) (*notifySocket, error) {
	file := true
	if len(path) > maxUnixPath {
		path, file = "@baton-notify-"+strconv.Itoa(pid), false
	}
	if file {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("master: notify socket: %w", err)
		}
	}
	// Workers may run as another user (--user): the file is 0666 from
	// bind(2) on (withUmask: no chmod by path), and the credentials, not
	// the file mode, say who is speaking.
	var conn *net.UnixConn
	err := withUmask(0o666, func() (err error) {
		conn, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("master: notify socket: %w", err)
	}
	ns := &notifySocket{path: path, conn: conn, file: file}
	rc, err := conn.SyscallConn()
	if err == nil {
		cerr := rc.Control(func(fd uintptr) {
			err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
		})
		err = errors.Join(cerr, err)
	}
	if err != nil {
		ns.close()
		return nil, fmt.Errorf("master: notify socket: %w", err)
	}
	return ns, nil
}

// read blocks for the next datagram that carries credentials; it returns an
// error once the socket is closed.
func (ns *notifySocket) read() (notifyMsg, error) {
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred))
	for {
		n, oobn, _, _, err := ns.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			return notifyMsg{}, err
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			continue
		}
		pid := 0
		for _, m := range msgs {
			if cred, err := unix.ParseUnixCredentials(&m); err == nil {
				pid = int(cred.Pid)
			}
		}
		if pid <= 0 {
			continue // no credentials: nobody to attribute it to
		}
		fields := map[string]string{}
		for line := range strings.SplitSeq(string(buf[:n]), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				fields[k] = v
			}
		}
		return notifyMsg{pid: pid, fields: fields}, nil
	}
}

func (ns *notifySocket) close() {
	ns.conn.Close()
	if ns.file {
		os.Remove(ns.path)
	}
}
