#!/bin/sh
# package-check.sh: install baton's .deb with apt, prove it from the
# installed paths, purge it and check that nothing of it is left.
#
# Usage (as root, on a Debian machine without a baton package installed):
#   scripts/package-check.sh dist/baton_<version>_amd64.deb
#
# From the installed paths it checks:
#   - /usr/bin/baton is static and "baton --version" says the version the
#     package's changelog names;
#   - "man -w baton" finds baton(1), which renders;
#   - the bash completion loads and completes (through bash-completion's
#     loader where that package is installed), zsh's and fish's parse where
#     those shells are installed;
#   - the units in /lib/systemd/system and the nginx drop-in pass
#     verify-units.sh against /usr/bin/baton (where systemd-analyze and
#     Debian's nginx.service are installed);
#   - the init script, with the shipped nginx defaults, drives a real nginx
#     (on a unix socket in a temporary directory; nothing on port 80)
#     through start, upgrade, rotate (the error log moved aside is reopened)
#     and stop;
#   - the logrotate snippet's postrotate makes a "baton run" master with its
#     pid file in /run/baton reopen its --log-file.
# Then "apt-get purge" must leave none of the package's files, and dpkg must
# not know the package. Whatever the check started is stopped by pid, and
# the package is purged, also when a step fails.
# Needs: apt-get, dpkg, man (man-db), bash, curl, nginx (/usr/sbin/nginx).
set -eu

if [ $# -ne 1 ] || [ ! -f "$1" ]; then
	echo "usage: $0 PACKAGE.deb" >&2
	exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
deb=$(cd "$(dirname "$1")" && pwd)/${1##*/}
if [ "$(id -u)" != 0 ]; then
	echo "package-check: must run as root (apt-get install)" >&2
	exit 2
fi
if dpkg-query -W -f '${Status}' baton 2>/dev/null | grep -q installed; then
	echo "package-check: a baton package is installed already; purge it first" >&2
	exit 2
fi
for tool in apt-get dpkg-deb man bash curl /usr/sbin/nginx; do
	command -v "$tool" >/dev/null || {
		echo "package-check: $tool is missing" >&2
		exit 2
	}
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/baton-package-check.XXXXXX")
installed=
nginx_pids=
baton_pid=
run_pidfile=
made_run_dir=
cleanup() {
	rc=$?
	if [ -n "$baton_pid" ]; then
		kill -QUIT "$baton_pid" 2>/dev/null || true
		wait "$baton_pid" 2>/dev/null || true
	fi
	[ -z "$run_pidfile" ] || rm -f "$run_pidfile"
	[ -z "$made_run_dir" ] || rmdir /run/baton 2>/dev/null || true
	# The masters this check started: those it recorded, and those its pid
	# files name (a start that failed half way).
	nginx_pids="$nginx_pids $(cat "$tmp/nginx/nginx.pid" "$tmp/nginx/nginx.pid.oldbin" 2>/dev/null || true)"
	for pid in $nginx_pids; do
		# Only nginx masters this check started; QUIT then KILL.
		if [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = /usr/sbin/nginx ]; then
			kill -QUIT "$pid" 2>/dev/null || true
		fi
	done
	for pid in $nginx_pids; do
		n=0
		while alive "$pid" && [ $n -lt 50 ]; do
			sleep 0.1
			n=$((n + 1))
		done
		alive "$pid" && kill -KILL "$pid" 2>/dev/null
	done
	if [ -n "$installed" ]; then
		apt-get purge -y -q baton >/dev/null 2>&1 || true
	fi
	rm -rf "$tmp"
	exit $rc
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

# alive tells whether process $1 exists and is not a zombie (a daemon's
# parent is PID 1, which in a container may reap it late).
alive() {
	_stat=
	IFS= read -r _stat 2>/dev/null <"/proc/$1/stat" || return 1
	case ${_stat##*) } in
	Z* | X* | x*) return 1 ;;
	esac
	return 0
}

fail() {
	echo "package-check: FAIL: $*" >&2
	exit 1
}
step() { echo "package-check: $*"; }

# wait_for runs "$@" every 0.1 s until it succeeds, for up to 10 s.
wait_for() {
	n=0
	until "$@"; do
		n=$((n + 1))
		[ $n -lt 100 ] || return 1
		sleep 0.1
	done
}

step "install $deb"
files=$(dpkg-deb --fsys-tarfile "$deb" | tar -t | sed -n 's|^\./|/|; /[^/]$/p')
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$deb" >"$tmp/apt.log" 2>&1 ||
	{
		cat "$tmp/apt.log" >&2
		fail "apt-get install"
	}
installed=yes
version=$(dpkg-query -W -f '${Version}' baton)
[ "$version" = "$(dpkg-deb -f "$deb" Version)" ] || fail "dpkg says version $version"

step "binary: /usr/bin/baton, static, its version"
[ "$(command -v baton)" = /usr/bin/baton ] || fail "baton on PATH is $(command -v baton)"
if ldd /usr/bin/baton >/dev/null 2>&1; then
	fail "/usr/bin/baton is dynamically linked: $(ldd /usr/bin/baton)"
fi
tag=$(zcat /usr/share/doc/baton/changelog.gz | sed -n 's/^  \* baton \(v[^ ]*\)\.$/\1/p' | head -n 1)
[ -n "$tag" ] || fail "the changelog names no version"
got=$(baton --version)
[ "$got" = "baton version $tag" ] || fail "baton --version says '$got', the changelog $tag"
baton version | grep -q "^baton $tag " || fail "baton version says '$(baton version)'"

step "man page"
[ "$(man -w baton)" = /usr/share/man/man1/baton.1.gz ] || fail "man -w baton: $(man -w baton 2>&1)"
MANWIDTH=80 MANPAGER=cat man baton 2>"$tmp/man.err" | grep -q 'baton upgrade start' || fail "man baton does not show 'baton upgrade start'"
[ ! -s "$tmp/man.err" ] || fail "man baton: $(cat "$tmp/man.err")"

step "completions"
# shellcheck disable=SC2016 # expanded by bash
# As bash sets them for "baton upg<TAB>": bash-completion's
# _get_comp_words_by_ref reads COMP_LINE and COMP_POINT.
complete_upg='COMP_LINE="baton upg"; COMP_POINT=9; COMP_WORDS=(baton upg); COMP_CWORD=1; _baton; [ "${COMPREPLY[*]}" = upgrade ] || { echo "completing upg: ${COMPREPLY[*]}"; exit 1; }'
bash --norc --noprofile -c ". /usr/share/bash-completion/completions/baton && $complete_upg" ||
	fail "the bash completion does not complete 'baton upg'"
if [ -r /usr/share/bash-completion/bash_completion ]; then
	# _completion_loader returns 124 ("retry the completion") once it has
	# loaded one: what it loaded is checked by complete -p instead.
	bash --norc --noprofile -c ". /usr/share/bash-completion/bash_completion; _completion_loader baton; complete -p baton >/dev/null && $complete_upg" ||
		fail "bash-completion does not load baton's completion from its directory"
fi
if command -v zsh >/dev/null; then
	zsh -n /usr/share/zsh/vendor-completions/_baton || fail "zsh -n _baton"
fi
if command -v fish >/dev/null; then
	fish -n /usr/share/fish/vendor_completions.d/baton.fish || fail "fish -n baton.fish"
fi

if command -v systemd-analyze >/dev/null && [ -e /lib/systemd/system/nginx.service ]; then
	step "systemd units at /usr/bin/baton"
	mkdir -p "$tmp/units/nginx.service.d"
	cp /lib/systemd/system/baton@.service /lib/systemd/system/baton@.socket "$tmp/units/"
	cp /usr/share/baton/systemd/nginx.service.d/baton-upgrade.conf \
		/usr/share/baton/systemd/nginx.service.d/baton-hardening.conf "$tmp/units/nginx.service.d/"
	if grep -rq /usr/local/bin/baton "$tmp/units"; then
		fail "an installed unit names /usr/local/bin/baton"
	fi
	sh "$here/verify-units.sh" /usr/bin/baton "$tmp/units"
fi

step "init script: nginx through start, upgrade, rotate, stop"
dir=$tmp/nginx
mkdir -p "$dir/tmp"
# nginx's workers (user nobody) reopen the logs themselves on USR1.
chmod 0755 "$tmp" "$dir"
cat >"$dir/nginx.conf" <<EOF
# written by baton's scripts/package-check.sh
pid $dir/nginx.pid;
error_log $dir/error.log;
worker_processes 2;
events {}
http {
	access_log $dir/access.log;
	client_body_temp_path $dir/tmp/body;
	proxy_temp_path $dir/tmp/proxy;
	fastcgi_temp_path $dir/tmp/fastcgi;
	uwsgi_temp_path $dir/tmp/uwsgi;
	scgi_temp_path $dir/tmp/scgi;
	server {
		listen unix:$dir/nginx.sock;
		location / { return 200 "ok\n"; }
	}
}
EOF
# The shipped defaults, with the paths moved into the temporary directory.
cat >"$dir/defaults" <<EOF
. /usr/share/baton/default/nginx
NAME=package-check-nginx
DAEMON_ARGS="-p $dir/ -c $dir/nginx.conf -e $dir/error.log"
PIDFILE=$dir/nginx.pid
CONFIGTEST="\$DAEMON -t -q \$DAEMON_ARGS"
PREFLIGHT="\$DAEMON -t -q \$DAEMON_ARGS"
CHECKS="unix:$dir/nginx.sock:/"
VERIFY_FOR=1
EOF
grep -q '^BATON=/usr/bin/baton$' /usr/share/baton/default/nginx || fail "the nginx defaults do not name BATON=/usr/bin/baton"
initd() { BATON_DEFAULTS=$dir/defaults sh /usr/share/baton/init.d/baton "$@"; }
served() { [ "$(curl -fsS --max-time 5 --unix-socket "$dir/nginx.sock" http://localhost/)" = ok ]; }
# logged: a request made now is in the (reopened) access log.
logged() { served && [ -s "$dir/access.log" ]; }
master() { cat "$dir/nginx.pid"; }
# children prints the pids whose parent is $1 (its workers).
children() {
	for stat in /proc/[0-9]*/stat; do
		read -r line 2>/dev/null <"$stat" || continue
		rest=${line##*) }
		set -f
		# shellcheck disable=SC2086 # split the fields on purpose
		set -- $rest
		set +f
		[ "$2" = "$want_parent" ] && echo "${stat#/proc/}" | cut -d/ -f1
	done
	return 0
}

initd start || fail "init script start"
first=$(master)
nginx_pids="$first"
served || fail "nginx does not serve after start"
initd status >/dev/null || fail "status after start"

initd upgrade || fail "init script upgrade"
second=$(master)
nginx_pids="$nginx_pids $second"
[ "$second" != "$first" ] || fail "upgrade: the pid file still names $first"
! alive "$first" || fail "upgrade: the old master $first is alive"
served || fail "nginx does not serve after the upgrade"

mv "$dir/error.log" "$dir/error.log.1"
mv "$dir/access.log" "$dir/access.log.1"
initd rotate || fail "init script rotate"
wait_for test -e "$dir/error.log" || fail "rotate: nginx did not reopen its error log"
wait_for logged || fail "rotate: the workers did not reopen the access log"

want_parent=$second
workers=$(children)
[ -n "$workers" ] || fail "nginx $second has no workers"
initd stop || fail "init script stop"
for pid in $second $workers; do
	! alive "$pid" || fail "stop returned with $pid alive"
done
rc=0
initd status >/dev/null || rc=$?
[ $rc = 3 ] || fail "status after stop: exit $rc, want 3"
nginx_pids=

step "logrotate snippet: a baton master in /run/baton reopens its log"
# The postrotate commands as logrotate would run them (with sh), on a master
# started here from /usr/bin/baton, its pid file in /run/baton.
if [ ! -d /run/baton ]; then
	mkdir -m 0755 /run/baton
	made_run_dir=yes
fi
run_pidfile=/run/baton/package-check-$$.pid
log=$tmp/master.log
/usr/bin/baton run --pidfile "$run_pidfile" --listen "unix:$tmp/app.sock" --workers 1 \
	--log-file "$log" -- /usr/bin/baton demo-app </dev/null >"$tmp/master.out" 2>&1 &
baton_pid=$!
wait_for test -s "$run_pidfile" || fail "baton run wrote no pid file: $(cat "$tmp/master.out")"
[ "$(cat "$run_pidfile")" = "$baton_pid" ] || fail "$run_pidfile names $(cat "$run_pidfile"), not $baton_pid"
wait_for test -s "$log" || fail "baton run did not log to $log"
mv "$log" "$log.1"
sed -n '/^[[:space:]]*postrotate$/,/^[[:space:]]*endscript$/p' /etc/logrotate.d/baton | sed '1d;$d' >"$tmp/postrotate"
[ -s "$tmp/postrotate" ] || fail "/etc/logrotate.d/baton has no postrotate commands"
sh -e "$tmp/postrotate" || fail "the postrotate commands failed"
wait_for test -e "$log" || fail "postrotate: the master did not reopen $log"
kill -QUIT "$baton_pid"
rc=0
wait "$baton_pid" || rc=$?
baton_pid=
[ $rc = 0 ] || fail "baton run exited $rc after QUIT: $(cat "$tmp/master.out")"
rm -f "$run_pidfile"
run_pidfile=
if [ -n "$made_run_dir" ]; then
	rmdir /run/baton
	made_run_dir=
fi

step "purge"
apt-get purge -y -q baton >"$tmp/apt.log" 2>&1 || {
	cat "$tmp/apt.log" >&2
	fail "apt-get purge"
}
installed=
if dpkg-query -W baton >/dev/null 2>&1; then
	fail "dpkg still knows baton after the purge: $(dpkg-query -W -f '${Status}' baton)"
fi
left=
for f in $files /usr/share/baton /usr/share/doc/baton; do
	[ -e "$f" ] || [ -L "$f" ] || continue
	left="$left $f"
done
[ -z "$left" ] || fail "left after the purge:$left"
step "ok: $version installed, checked and purged"
