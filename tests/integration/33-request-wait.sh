#!/bin/bash
# 33-request-wait: while no daemon serves, requests wait at most --request-wait;
# past it they, the one the dead daemon held and every later one get EIO at
# once, until a daemon serves again.
# The daemon dies holding a statfs (crash hook); the next one computes for 15 s
# before it reads FUSE_INIT (it is kept: it shows CPU time), with
# --request-wait=2: the held statfs and a cat that waited in the keeper fail
# with EIO after about 2 s, not 15; a stat and a read through an fd opened
# before the crash then fail with EIO at once; once the daemon takes over, the
# same fd reads the file whole again and a new stat -f succeeds
# (request_wait_case in tests/lib-giveup.sh; 99-reinit-giveup runs it in reinit
# mode).
# timeout: 180
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../lib-giveup.sh"

need_prog "$TESTFS"
need_cmd sha256sum

request_wait_case
fk_wait STOPPED "" 5 || fail "no STOPPED event"
assert_all_gone
log "ok"
