#!/bin/bash
# 27-systemd-units: the shipped systemd units pass `systemd-analyze verify`, and the template's
# command line, filled from a per-mount config as systemd fills it, runs a keeper that serves.
#
# The units the build configured (BUILD_DIR/contrib/systemd) are copied with their ExecStart=
# pointing at the built fusekeeper (verify checks that the program exists), next to a copy of
# Debian's lxcfs.service for the drop-in. Any message of verify fails the test: it reports
# unknown keys and bad values as warnings only.
# Then a config in the example's format, for testfs, is read the way EnvironmentFile= reads it
# and the template's ExecStart= run with it: the keeper must serve, make a planned restart on
# ExecReload= (with $MAINPID) and stop on SIGTERM (KillMode=mixed) with exit status 0 and the mount gone.
# timeout: 120
. "$(dirname "$0")/../lib.sh"

need_cmd systemd-analyze
need_prog "$TESTFS"
U=$T/units
mkdir -p "$U/lxcfs.service.d"
src=$BUILD_DIR/contrib/systemd
[ -f "$src/fusekeeper@.service" ] || fail "the build did not configure $src/fusekeeper@.service"
bindir=$(sed -n 's|^ExecStart=\(.*\)/fusekeeper .*|\1|p' "$src/fusekeeper@.service")
[ -n "$bindir" ] || fail "no ExecStart= running fusekeeper in fusekeeper@.service"
sed "s|$bindir/fusekeeper|$FK|" "$src/fusekeeper@.service" >"$U/fusekeeper@.service"
sed "s|$bindir/fusekeeper|$FK|" "$src/lxcfs.service.d-fusekeeper.conf" >"$U/lxcfs.service.d/fusekeeper.conf"
units=("fusekeeper@example.service")
if [ -f /lib/systemd/system/lxcfs.service ]; then
	cp /lib/systemd/system/lxcfs.service "$U/"
	units+=(lxcfs.service)
else
	log "lxcfs.service is not installed: its drop-in is not verified"
fi
# Verify runs man(1) for Documentation=: fusekeeper(1) from the source tree, as if installed.
mkdir -p "$T/man/man1"
ln -s "$FK_SRCDIR/man/fusekeeper.1" "$T/man/man1/fusekeeper.1"
out=$(cd "$U" && MANPATH=$T/man: SYSTEMD_UNIT_PATH=$U: systemd-analyze verify "${units[@]}" 2>&1)
rc=$?
[ "$rc" = 0 ] || fail "systemd-analyze verify failed ($rc): $out"
[ -z "$out" ] || fail "systemd-analyze verify has complaints: $out"
grep -q "^ExecStart=$FK --write-through /var/lib/lxcfs -- /usr/bin/lxcfs /var/lib/lxcfs\$" \
	"$U/lxcfs.service.d/fusekeeper.conf" || fail "the drop-in does not run lxcfs under fusekeeper"
for v in MOUNTPOINT OPTIONS COMMAND; do
	grep -q "^$v=" "$FK_SRCDIR/contrib/systemd/fusekeeper.conf.example" ||
		fail "the example config has no $v="
done

# The template, filled from a config as systemd does: one VARIABLE=value a line, and unquoted
# $VARIABLE in ExecStart= split into words.
M=$T/mnt
B=$T/back
mkdir "$M" "$B"
echo data >"$B/f"
cat >"$T/example.conf" <<EOF
# A comment, as in the example.
MOUNTPOINT=$M
OPTIONS=--stop-timeout=2
COMMAND=$TESTFS --backing=$B -f $M
EOF
declare -A var
while IFS='=' read -r key value; do
	[[ $key =~ ^[A-Z_]+$ ]] && var[$key]=$value
done <"$T/example.conf"
line=$(sed -n 's/^ExecStart=//p' "$U/fusekeeper@.service")
line=${line//\$OPTIONS/${var[OPTIONS]}}
line=${line//\$MOUNTPOINT/${var[MOUNTPOINT]}}
line=${line//\$COMMAND/${var[COMMAND]}}
read -r -a argv <<<"$line"
[ "${argv[0]}" = "$FK" ] || fail "ExecStart= does not start with fusekeeper: $line"
# fk_start takes MOUNTPOINT first and puts the options before it again.
for ((dd = 1; dd < ${#argv[@]}; dd++)); do
	[ "${argv[dd]}" = -- ] && break
done
[ "${argv[*]:1:dd-1}" = "--stop-timeout=2 $M" ] || fail "unexpected template expansion: $line"
fk_start "$M" "${argv[@]:1:dd-2}" -- "${argv[@]:dd+1}"
fk_wait READY || fail "the keeper run as the template runs it never became READY"
[ "$(cat "$M/f")" = data ] || fail "the mount does not serve"
reload=$(sed -n 's/^ExecReload=//p' "$U/fusekeeper@.service")
reload=${reload//\$MAINPID/$FK_PID}
read -r -a rargv <<<"$reload"
try_cmd 60 "${rargv[@]}" || fail "ExecReload= ($reload) failed: $TRY_OUT"
fk_wait RESTARTED || fail "no planned restart on ExecReload="
[ "$(cat "$M/f")" = data ] || fail "the mount does not serve after the reload"
kill -TERM "$FK_PID"
fk_wait_exit 30 || fail "the keeper did not stop on SIGTERM"
[ "$FK_STATUS" = 0 ] || fail "the keeper exited $FK_STATUS on SIGTERM"
assert_not_mounted "$M"
assert_all_gone
log "ok"
