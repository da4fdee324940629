# shellcheck shell=bash
# bench/lib-passthrough.sh - sourced by the bench scripts.
#
#   build_passthrough OUT   builds libfuse's passthrough_ll example from the installed
#                           libfuse3-dev package into OUT (again only when the package's
#                           source is newer) and prints the program's path; returns 1
#                           with a message on stderr when it cannot
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
