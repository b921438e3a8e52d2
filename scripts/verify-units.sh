#!/bin/sh
# verify-units.sh: a strict "systemd-analyze verify" of every unit file and
# drop-in under scripts/systemd/ (or UNITS_DIR), as they would be installed.
#
# Usage: scripts/verify-units.sh BATON_BINARY [UNITS_DIR]
#
# UNITS_DIR holds *.service and *.socket files and UNIT.d/ drop-in
# directories, as scripts/systemd does; the Debian package's units, which
# name /usr/bin/baton instead of /usr/local/bin/baton, are verified the same
# way (.ci/run does, on the installed package).
#
# systemd-analyze verify fails when a unit's Exec*= binary does not exist or
# a unit it depends on (sysinit.target, ...) cannot be found, and it only
# warns, exiting 0, about unknown keys or bad values. So this script:
#   - builds a throwaway root: the host's own unit files (for the targets,
#     and Debian's nginx.service that the drop-in extends), our units and
#     drop-ins in /etc/systemd/system, BATON_BINARY at every path named
#     baton that an Exec*= line runs (/usr/local/bin/baton in scripts/,
#     /usr/bin/baton in the package) and, from the host, every other binary
#     an Exec*= line of the units under test names;
#   - runs "systemd-analyze verify --root=ROOT --man=no" on the units by name
#     (templates are verified as an instance, baton@verify);
#   - fails if verify exits non-zero OR prints anything at all.
# A missing binary or unit, a typo in a key, or a drop-in whose unit is not
# installed (nginx.service comes with Debian's nginx-common) all fail it.
# Needs systemd-analyze (Debian: package systemd); runs as any user.
set -eu

if [ $# -lt 1 ] || [ $# -gt 2 ] || [ ! -x "$1" ]; then
	echo "usage: $0 BATON_BINARY [UNITS_DIR] (an executable baton; default units: scripts/systemd)" >&2
	exit 2
fi
baton=$1
here=$(cd "$(dirname "$0")" && pwd)
units=${2:-$here/systemd}
if [ ! -d "$units" ]; then
	echo "verify-units: $units is not a directory" >&2
	exit 2
fi
command -v systemd-analyze >/dev/null || {
	echo "verify-units: systemd-analyze not found (install systemd)" >&2
	exit 1
}

root=$(mktemp -d "${TMPDIR:-/tmp}/baton-verify.XXXXXX")
trap 'rm -rf "$root"' EXIT HUP INT TERM

# The host's units: targets every service depends on, and the units our
# drop-ins extend.
mkdir -p "$root/lib/systemd" "$root/etc/systemd/system"
for dir in /lib/systemd/system /usr/lib/systemd/system; do
	if [ -d "$dir" ]; then
		mkdir -p "$root$dir"
		cp -R "$dir/." "$root$dir/"
		break
	fi
done

names=
for f in "$units"/*.service "$units"/*.socket; do
	[ -e "$f" ] || continue
	cp "$f" "$root/etc/systemd/system/"
	name=${f##*/}
	case $name in
	*@.*) name=${name%%@.*}@verify.${name##*.} ;;
	esac
	names="$names $name"
done
for d in "$units"/*.d; do
	[ -d "$d" ] || continue
	unit=${d##*/}
	unit=${unit%.d}
	found=
	for dir in /etc/systemd/system /lib/systemd/system /usr/lib/systemd/system; do
		[ -e "$root$dir/$unit" ] && found=yes
	done
	if [ -z "$found" ]; then
		echo "verify-units: $unit, extended by $d, is not installed on this host" >&2
		exit 1
	fi
	mkdir -p "$root/etc/systemd/system/$unit.d"
	cp "$d"/*.conf "$root/etc/systemd/system/$unit.d/"
	names="$names $unit"
done

# The binaries the Exec*= lines name: baton from the argument, the rest from
# the host (a missing one stays missing, and verify reports it).
for name in $names; do
	for f in "$root/etc/systemd/system/${name%%@*}"* "$root/lib/systemd/system/$name" "$root/usr/lib/systemd/system/$name" "$root/etc/systemd/system/$name.d"/*.conf; do
		[ -f "$f" ] || continue
		sed -n 's/^Exec[A-Za-z]*=[-@:+!|]*\(\/[^ ]*\).*/\1/p' "$f"
	done
done | sort -u | while IFS= read -r bin; do
	[ -e "$root$bin" ] && continue
	if [ "${bin##*/}" = baton ]; then
		mkdir -p "$root${bin%/*}"
		cp "$baton" "$root$bin"
	elif [ -e "$bin" ]; then
		mkdir -p "$root${bin%/*}"
		cp "$bin" "$root$bin"
	fi
done

# shellcheck disable=SC2086 # $names is a list of unit names
out=$(cd "$root" && systemd-analyze verify --root="$root" --man=no $names 2>&1) || {
	echo "verify-units: systemd-analyze verify failed for$names:" >&2
	printf '%s\n' "$out" >&2
	exit 1
}
if [ -n "$out" ]; then
	echo "verify-units: systemd-analyze verify warned for$names:" >&2
	printf '%s\n' "$out" >&2
	exit 1
fi
echo "verify-units: ok:$names"
