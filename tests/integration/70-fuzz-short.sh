#!/bin/bash
# 70-fuzz-short: the daemon-facing fuzzers, briefly (fuzz/README.md): every kept seed and
# regression input once, then FUZZ_SHORT seconds (default 12) of fuzzing per harness. A crash,
# leak, sanitizer report or harness finding fails it; the fuzzer's report is in the log.
#   - skipped without clang and libFuzzer (scripts/install-deps.sh fuzz);
#   - skipped under a sanitized build: the fuzzers carry their own sanitizers and build in
#     build-fuzz whatever BUILD_DIR is, so one run per `make check` is enough.
# timeout: 900
. "$(dirname "$0")/../lib.sh"

command -v clang >/dev/null || skip "clang is not installed (scripts/install-deps.sh fuzz)"
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' >"$T/probe.c"
clang -fsanitize=fuzzer "$T/probe.c" -o "$T/probe" >"$T/probe.log" 2>&1 ||
	skip "clang cannot link libFuzzer (libclang-rt-14-dev: scripts/install-deps.sh fuzz)"
# Not `ldd | grep -q`: under pipefail, grep leaving at the first match can kill ldd with
# SIGPIPE, and the failed pipeline then reads as "not sanitized" (seen: the fuzzers ran twice).
if grep -q libasan <<<"$(ldd "$FK" 2>/dev/null)"; then
	skip "sanitized build: the fuzzers ran with the normal build's suite"
fi

make -C "$FK_SRCDIR" --no-print-directory fuzz-build >"$T/build.log" 2>&1 || {
	cat "$T/build.log"
	fail "the fuzzing build failed"
}
# From the kept inputs only, in a corpus of the test's own: the same run every time, whatever
# `make fuzz` left in build-fuzz. A finding's input is in the log, in base64.
FUZZ_WORK=$T/fuzz-work "$FK_SRCDIR/fuzz/run.sh" "$FK_SRCDIR/build-fuzz" "${FUZZ_SHORT:-12}" ||
	fail "the fuzzers found something (the input is above in base64: keep it in fuzz/regressions/)"
log "fuzzers clean"
