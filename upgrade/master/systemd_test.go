//go:build linux

package master_test

import (
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeSystemd is a NOTIFY_SOCKET for the master, recording who said what.
type fakeSystemd struct {
	path string
	conn *net.UnixConn
	mu   sync.Mutex
	msgs []sdMsg
}

type sdMsg struct {
	pid  int
	text string
}

func newFakeSystemd(t testing.TB, dir string) *fakeSystemd {
	t.Helper()
	path := filepath.Join(dir, "systemd.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := conn.SyscallConn()
	rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1) })
	f := &fakeSystemd{path: path, conn: conn}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred))
		for {
			n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
			if err != nil {
				return
			}
			pid := 0
			if cms, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
				for _, cm := range cms {
					if c, err := unix.ParseUnixCredentials(&cm); err == nil {
						pid = int(c.Pid)
					}
				}
			}
			f.mu.Lock()
			f.msgs = append(f.msgs, sdMsg{pid: pid, text: string(buf[:n])})
			f.mu.Unlock()
		}
	}()
	return f
}

// said reports whether pid sent a datagram containing line.
func (f *fakeSystemd) said(pid int, line string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.msgs {
		if m.pid == pid && slices.Contains(strings.Split(m.text, "\n"), line) {
			return true
		}
	}
	return false
}

func (f *fakeSystemd) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fmt.Sprint(f.msgs)
}
