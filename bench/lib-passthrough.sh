# shellcheck shell=bash
# bench/lib-passthrough.sh - sourced by the bench scripts.
#
#   build_passthrough OUT   builds libfuse's passthrough_ll example from the installed
#                           libfuse3-dev package into OUT (again only when the package's
#                           source is newer) and prints the program's path; returns 1
#                           with a message on stderr when it cannot
#   make_tree               writes FILES small files (1-4 KiB of text) in directories of
#                           100 under B/tree
#   walk MNT [TAG]          find + stat + cat of every file under MNT/tree (the file list
#                           goes to WORK/list.TAG)
#   seq_write MNT TAG       SEQ_MB MiB written to MNT/seq.TAG and fsynced
#   seq_read MNT TAG        MNT/seq.TAG read whole
#   timed CMD...            runs CMD and prints the seconds it took (3 decimals); needs now_us
#   median                  the median of the numbers on stdin, one a line
#   ratio A B               A / B with 2 decimals, "-" when A is empty or B is not positive
# The example's source is taken from the package each time; it is never part of this
# repository.

PASSTHROUGH_EXAMPLES=/usr/share/doc/libfuse3-dev/examples

# Debian may ship the examples compressed.
_pt_fetch() {
	if [ -r "$PASSTHROUGH_EXAMPLES/$1" ]; then
		cp "$PASSTHROUGH_EXAMPLES/$1" "$2/$1"
	elif [ -r "$PASSTHROUGH_EXAMPLES/$1.gz" ]; then
		gzip -dc "$PASSTHROUGH_EXAMPLES/$1.gz" >"$2/$1"
	else
		echo "$PASSTHROUGH_EXAMPLES/$1 not found: install libfuse3-dev" \
			"(scripts/install-deps.sh bench)" >&2
		return 1
	fi
}

build_passthrough() {
	local out=$1 pt=$1/passthrough_ll
	mkdir -p "$out/src"
	if [ ! -x "$pt" ] || [ "$PASSTHROUGH_EXAMPLES/passthrough_ll.c" -nt "$pt" ]; then
		_pt_fetch passthrough_ll.c "$out/src" && _pt_fetch passthrough_helpers.h "$out/src" ||
			return 1
		# shellcheck disable=SC2046
		cc -O2 -Wall -I"$out/src" $(pkg-config --cflags fuse3) -o "$pt" \
			"$out/src/passthrough_ll.c" $(pkg-config --libs fuse3) -lpthread >&2 || {
			echo "building passthrough_ll failed" >&2
			return 1
		}
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
