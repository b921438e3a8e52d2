package procs

// Children lists the live (non-zombie) children of pid, oldest first (by
// start time, then pid). Processes that exit while the list is built are
// left out. It fails with an error wrapping ErrGone when pid itself is gone
// or a zombie.
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
