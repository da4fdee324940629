#!/bin/bash
# 41-hostile: a daemon that breaks the protocol now and then. fkchaos runs as
# the daemon in front of testfs and, for a few per cent of testfs's messages,
# sends instead a malformed one of every kind the keeper checks (tests/fkchaos.c);
# each restart draws other faults. Several clients stat, read (content checked
# byte for byte against the backing directory, through fresh fds and through
# one fd held for the whole run) and list for about 30 s, timing every call.
#
# Asserted: the keeper never dies; no call takes longer than the bound; a call
# that succeeds never returns anything but the backing directory's content; the
# keeper logged every broken message and killed the daemon that sent it; once
# fkchaos is calm, everything succeeds and matches again, the held fds too.
#
# The bound (docs/design.md, "Bad input from a daemon"): a request given to a
# daemon that breaks the protocol gets EIO when the keeper reads the bad
# message; a request waits for a serving daemon at most --request-wait after
# the death of the last one that served, then fails at once until one serves
# again. A call makes up to three requests here (LOOKUP, OPEN or GETATTR, READ),
# each of which may wait: 3 x (--request-wait + 1 s of slack) = 9 s.
# A daemon that answers nothing (fkchaos's "silent" kind) holds its requests
# until --hang-timeout finds it hung and kills it (or, while it starts, until
# its start times out); they are then replayed, at most to three daemons in a
# row: 3 x --hang-timeout more. The kind is used when the keeper has that
# option.
#
# FK_HOSTILE_SEED, FK_HOSTILE_RATE (per cent) and FK_HOSTILE_SECONDS override
# the defaults; the seed is logged, so a failure can be run again.
# timeout: 240
. "$(dirname "$0")/../lib.sh"

FKCHAOS=$BUILD_DIR/tests/fkchaos
FKPROBE=$BUILD_DIR/tests/fkprobe
need_prog "$TESTFS"
need_prog "$FKCHAOS"
need_prog "$FKPROBE"
need_cmd sha256sum

SEED=${FK_HOSTILE_SEED:-$(($(date +%s%N) % 1000000007))}
RATE=${FK_HOSTILE_RATE:-0.2}
SECONDS_RUN=${FK_HOSTILE_SECONDS:-30}
WAIT=2
BOUND_MS=$((3 * (WAIT + 1) * 1000))
KINDS=${FK_HOSTILE_KINDS:-short,lenlong,lenshort,unique,callunique,orphan,poserror,bigerror,errbody,size,noname,longname,cutrecord,notify,dup,huge}
HANG_OPTS=()
if grep -q -- --hang-timeout <<<"$("$FK" --help)"; then
	HANG=2
	HANG_OPTS=(--hang-timeout="$HANG")
	[ -n "${FK_HOSTILE_KINDS:-}" ] || KINDS=$KINDS,silent
	BOUND_MS=$((BOUND_MS + 3 * HANG * 1000))
fi
log "seed $SEED, $RATE% of messages broken, kinds $KINDS, bound $BOUND_MS ms"

M=$T/mnt
B=$T/back
mkdir "$M" "$B" "$B/sub" "$B/sub2"
# Files of many sizes: empty, under a page, a few pages, several 128 KiB reads.
i=0
for size in 0 1 100 4095 4096 4097 65536 100000 300000 1048576; do
	head -c "$size" /dev/urandom >"$B/f$i"
	head -c $((size / 3 + 7)) /dev/urandom >"$B/sub/g$i"
	i=$((i + 1))
done
for n in $(seq 1 40); do echo "$n" >"$B/sub2/name-$n"; done
(cd "$B" && find . -type f -exec sha256sum {} + | sort -k 2) >"$T/want.sums"

# Calm while the clients start: a message broken then would answer the read client's
# opening of its held fd with EIO (by design), and the client would never start. The 6.1
# guest's slower start let fkchaos break the 58th message, a LOOKUP of that open.
touch "$T/calm"
fk_start "$M" ${FK_HOSTILE_VERBOSE:+-vv} --request-wait="$WAIT" --start-timeout=3 --max-restarts=100000 \
	--restart-window=60 "${HANG_OPTS[@]}" -- \
	"$FKCHAOS" --rate="$RATE" --seed="$SEED" --counter="$T/counter" --calm-if="$T/calm" \
	--log="$T/broken" --kinds="$KINDS" -- "$TESTFS" --backing="$B" {}
fk_wait READY || fail "the keeper never became READY"
: >"$T/broken"

clients=(stat stat read read ls)
pids=()
for n in "${!clients[@]}"; do
	run_bg "probe-$n" "$FKPROBE" "${clients[$n]}" "$M" "$B" --bound-ms="$BOUND_MS" \
		--stop-if="$T/stop"
	pids+=("$BG_PID")
	wait_match "$T/probe-$n.out" "^fkprobe .* files in" 30 >/dev/null ||
		fail "client $n (${clients[$n]}) did not start: $(cat "$T/probe-$n.err")"
done
rm "$T/calm"

# The run: the keeper must live throughout; the clients report on their own.
end=$(($(now_ms) + SECONDS_RUN * 1000))
while [ "$(now_ms)" -lt "$end" ]; do
	alive "$FK_PID" || fail "the keeper died during the run"
	for n in "${!pids[@]}"; do
		alive "${pids[$n]}" ||
			fail "client $n (${clients[$n]}) exited during the run: $(cat "$T/probe-$n.err")"
	done
	sleep 0.5
done
nbroken=$(grep -c '' "$T/broken")
log "$nbroken messages broken, $(fk_count DAEMON) daemons started, $(fk_count RECOVERED) recoveries"
[ "$nbroken" -ge 3 ] || fail "only $nbroken messages were broken in ${SECONDS_RUN}s: the test tested little"

# Calm: no more broken messages. Wait for a daemon that broke nothing to serve.
touch "$T/calm"
healthy=
deadline=$(($(now_ms) + 60000))
while [ "$(now_ms)" -lt "$deadline" ]; do
	alive "$FK_PID" || fail "the keeper died after calm"
	d=$(fk_daemon_pid)
	if alive "$d" && grep -Eq "^(READY|RECOVERED) $d( |$)" "$FK_EVENTS" &&
		! grep -q "^$d " "$T/broken"; then
		healthy=$d
		break
	fi
	sleep 0.1
done
[ -n "$healthy" ] || fail "no daemon served within 60 s of calm"
log "daemon $healthy serves calmly"

touch "$T/stop"
bad=
for n in "${!pids[@]}"; do
	wait_pid "${pids[$n]}" 120 || fail "client $n (${clients[$n]}) did not finish its last round"
	log "client $n (${clients[$n]}): exit $WAIT_STATUS: $(tail -n 1 "$T/probe-$n.out")"
	if [ "$WAIT_STATUS" != 0 ]; then
		sed "s/^/    client $n: /" "$T/probe-$n.err" | head -n 30
		bad="$bad $n"
	fi
done
[ -z "$bad" ] || fail "clients$bad saw wrong answers, slow calls or failures after calm"

# Everything reads right through fresh opens too.
try_cmd 60 sh -c "cd '$M' && find . -type f -exec sha256sum {} + | sort -k 2" ||
	fail "reading the whole tree after calm failed: $TRY_OUT"
[ "$TRY_OUT" = "$(cat "$T/want.sums")" ] || {
	diff <(echo "$TRY_OUT") "$T/want.sums" | head -n 20
	fail "the tree reads otherwise than the backing directory after calm"
}
[ "$(fk_daemon_pid)" = "$healthy" ] || fail "the calm daemon $healthy was replaced"

# Every broken message was noticed: its daemon was killed for it and the log says so.
missed=0
while read -r pid kind opcode unique; do
	if [ "$kind" = silent ]; then
		# Serving: found hung (--hang-timeout). Starting: its start times out.
		{ grep -q "^HUNG $pid$" "$FK_EVENTS" &&
			grep -q "Daemon $pid has held .* and answered nothing meanwhile" "$FK_LOG"; } ||
			grep -q "^FAILED $pid timeout$" "$FK_EVENTS" || {
			log "daemon $pid went silent unnoticed"
			missed=$((missed + 1))
		}
	elif ! grep -q "Daemon $pid broke the FUSE protocol" "$FK_LOG"; then
		log "daemon $pid broke a message ($kind, opcode $opcode, unique $unique) unnoticed"
		missed=$((missed + 1))
	fi
	grep -q "^EXIT $pid signal=KILL$" "$FK_EVENTS" || {
		log "daemon $pid ($kind) was not killed: $(grep "^EXIT $pid " "$FK_EVENTS")"
		missed=$((missed + 1))
	}
done <"$T/broken"
[ "$missed" = 0 ] || fail "$missed broken messages went unnoticed"
awk '{ print $2 }' "$T/broken" | sort | uniq -c | sed 's/^/    /'

# FK_HOSTILE_KEEP=DIR keeps the logs of a run that passed, for a look.
[ -z "${FK_HOSTILE_KEEP:-}" ] || cp "$FK_LOG" "$FK_EVENTS" "$T"/probe-* "$T/broken" "$FK_HOSTILE_KEEP/"
alive "$FK_PID" || fail "the keeper is not running at the end"
[ "$(fk_count GAVEUP)" = 0 ] || fail "the keeper gave up"
# Stopped rather than unmounted: a mount namespace made meanwhile by another
# program (a concurrent test's container) holds a copy of the mount, and then an
# umount here does not end the connection. SIGTERM ends it whatever holds it.
kill -TERM "$FK_PID"
fk_wait_exit 30 || fail "the keeper did not exit after SIGTERM"
[ "$FK_STATUS" = 0 ] || fail "the keeper exited with status $FK_STATUS"
assert_not_mounted "$M"
assert_all_gone
log "ok"
