# shellcheck shell=bash
# bench/lib-passthrough.sh - sourced by the bench scripts.
#
#   die MSG...              prints "bench: MSG" on stderr and exits 1
#   bench_start WHY ARG...  a bench script's start, given its own arguments: exactly one,
#                           the build directory; root (WHY says what for); sets BUILD_DIR,
#                           FK (where fusekeeper is built), OUT (BUILD_DIR/bench) and PT
#                           (passthrough_ll), or dies saying what is missing
#   passthrough_ll BUILD    prints the path of libfuse's passthrough_ll example as meson
#                           built it from libfuse3-dev's sources (BUILD/tests/lf-passthrough_ll,
#                           tests/meson.build); returns 1 with a message on stderr when it
#                           is not built
#   make_tree               writes FILES small files (1-4 KiB of text) in directories of
#                           100 under B/tree
#   walk MNT [TAG]          find + stat + cat of every file under MNT/tree (the file list
#                           goes to WORK/list.TAG)
#   seq_write MNT TAG       SEQ_MB MiB written to MNT/seq.TAG and fsynced
#   seq_read MNT TAG        MNT/seq.TAG read whole
#   now_us                  the wall clock in microseconds
#   timed CMD...            runs CMD and prints the seconds it took (3 decimals)
#   median                  the median of the numbers on stdin, one a line
#   ratio A B               A / B with 2 decimals, "-" when A is empty or B is not positive
# The example's source is the package's; it is never part of this repository.

die() {
	echo "bench: $*" >&2
	exit 1
}

bench_start() {
	local why=$1
	shift
	[ $# -eq 1 ] || die "usage: $0 BUILD_DIR"
	[ "$(id -u)" = 0 ] || die "must run as root ($why)"
	BUILD_DIR=$(cd "$1" 2>/dev/null && pwd) || die "build directory $1 not found"
	# shellcheck disable=SC2034 # for the script that sources this
	FK=$BUILD_DIR/fusekeeper
	# shellcheck disable=SC2034
	OUT=$BUILD_DIR/bench
	# shellcheck disable=SC2034
	PT=$(passthrough_ll "$BUILD_DIR") || die "no passthrough_ll to measure"
}

passthrough_ll() {
	local pt=$1/tests/lf-passthrough_ll
	if [ ! -x "$pt" ]; then
		echo "$pt is not built: install libfuse3-dev (scripts/install-deps.sh)" \
			"and run make" >&2
		return 1
	fi
	echo "$pt"
}

make_tree() {
	local d f per=100 n=0
	for ((d = 0; n < FILES; d++)); do
		mkdir -p "$B/tree/d$d"
		for ((f = 0; f < per && n < FILES; f++, n++)); do
			head -c $((1024 * (1 + n % 4))) /dev/zero | tr '\0' 'x' >"$B/tree/d$d/f$f"
		done
	done
}

walk() {
	local list=$WORK/list.${2:-walk}
	find "$1/tree" -type f -print0 >"$list"
	xargs -0 stat -c '%s %i' <"$list" >/dev/null
	xargs -0 cat <"$list" >/dev/null
}

seq_write() { dd if=/dev/zero of="$1/seq.$2" bs=1M count="$SEQ_MB" conv=fsync status=none; }
seq_read() { dd if="$1/seq.$2" of=/dev/null bs=1M status=none; }

now_us() { echo "${EPOCHREALTIME/./}"; }

timed() {
	local t0 t1
	t0=$(now_us)
	"$@"
	t1=$(now_us)
	awk -v d=$((t1 - t0)) 'BEGIN { printf "%.3f\n", d / 1e6 }'
}

# median: of an even count, the mean of the two middle values.
median() {
	sort -g | awk '{ v[NR] = $1 } END {
		if (NR % 2) print v[(NR + 1) / 2]; else if (NR) printf "%g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b > 0) printf "%.2f", a / b; else print "-" }'; }
