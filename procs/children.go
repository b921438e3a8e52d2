package procs

// Children lists the live (non-zombie) children of pid, oldest first (by
// start time, then pid). Processes that exit while the list is built are
// left out. It fails with an error wrapping ErrGone when pid itself is gone
// or a zombie. Each child's Stat has the fields of /proc/PID/stat, the start
// time and the command line; UID, Exe and Cwd are left unset (Info reads
// them): two files per child instead of five, at every look of a wait.
func Children(pid int) ([]Stat, error) { return children(pid) }

// ChildrenByRole lists the live children of pid whose command line says role
// (see Stat.Role), oldest first.
func ChildrenByRole(pid int, role Role) ([]Stat, error) {
	all, err := children(pid)
	if err != nil {
		return nil, err
	}
	var out []Stat
	for _, c := range all {
		if c.Role() == role {
			out = append(out, c)
		}
	}
	return out, nil
}

// Group lists the live (non-zombie) members of process group pgid, by
// identity, in pid order. Processes that exit while the list is built are
// left out; an empty list means the group is gone, or holds only zombies.
// A caller that signals the group by its id (kill(-pgid)) must know the id
// is not recycled: it is while no process of the group is left, reaped or
// not, so keep one unreaped (see upgrade's shell commands).
func Group(pgid int) ([]Identity, error) { return group(pgid) }
