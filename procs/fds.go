package procs

import (
	"bytes"
	"strings"
)

// Environ returns the environment process id was started with, one
// "KEY=VALUE" string per entry, empty entries left out; nil when it is empty.
// It fails with an error wrapping ErrReused when id's pid now belongs to
// another process, ErrGone when id has exited (or is a zombie), and
// fs.ErrPermission for another user's process without CAP_SYS_PTRACE.
//
// /proc/PID/environ shows the memory the environment was passed in at
// execve(2): setenv(3) calls after it do not show, and a process that writes
// a long title over argv and on into that memory (nginx does) shows the
// title there instead of its variables.
func Environ(id Identity) ([]string, error) { return environ(id) }

// FDTarget returns what descriptor fd of process id refers to, as the link
// /proc/PID/fd/FD reads: a path ("/dev/pts/0", "/dev/null"),
// "socket:[INODE]", "pipe:[INODE]", "anon_inode:[eventfd]"... A descriptor
// that is not open is an error wrapping fs.ErrNotExist; id's errors are those
// of Environ.
func FDTarget(id Identity, fd int) (string, error) { return fdTarget(id, fd) }

// SocketHolders lists the live processes that hold a descriptor to any of
// the sockets with these inodes (the Inode of a Listener), by pid. Processes
// that exit while the list is built, and processes whose descriptors the
// caller may not read (another user's, without CAP_SYS_PTRACE), are left
// out; so is a zombie, which holds no descriptors. Each Identity is read from
// the same /proc/PID directory as the descriptors, so it is the process that
// held the socket even if its pid is reused meanwhile.
func SocketHolders(inodes []uint64) ([]Identity, error) { return socketHolders(inodes) }

// Socket is a descriptor of a process that refers to a socket.
type Socket struct {
	FD    int    `json:"fd"`
	Inode uint64 `json:"inode"`
}

// Sockets lists the socket descriptors pid holds, ordered by fd: what
// /proc/PID/fd says, without looking the sockets up in the network tables
// as Listeners does, so it costs as much as the process has descriptors.
// Two processes that hold the same Inode share the socket. A descriptor
// closed while the list is built is left out; another user's process
// without CAP_SYS_PTRACE is an error wrapping fs.ErrPermission, a gone or
// zombie process one wrapping ErrGone.
func Sockets(pid int) ([]Socket, error) { return sockets(pid) }

// splitEnviron splits the NUL-terminated entries of /proc/PID/environ.
func splitEnviron(b []byte) []string {
	var env []string
	for kv := range bytes.SplitSeq(b, []byte{0}) {
		if len(kv) > 0 {
			env = append(env, string(kv))
		}
	}
	return env
}

// DropEnv returns env (KEY=VALUE entries, as Environ and os.Environ give
// them) without the entries whose name drop reports, for the environment
// of a process to start: baton's own and the service manager's variables
// are not passed on to what it runs. env itself is not changed.
func DropEnv(env []string, drop func(name string) bool) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if !drop(name) {
			out = append(out, kv)
		}
	}
	return out
}
