#!/bin/bash
# scripts/check-layout.sh [-v] [BUILD_DIR] - checks the layout rules of docs/design.md
# ("Pieces") on src/:
#   - no file of the top level includes a mode's header, and no mode includes another's;
#   - the units of src/ (a .c file and its .h, taken as one) include each other without a cycle;
#   - with BUILD_DIR: the object files of its libkeeper.a call each other without a cycle (what
#     a header that declares several files' functions would hide from the include graph).
# -v also prints the graphs, a line per edge: "FROM -> TO" for an include, "FROM calls TO" for
# a call. Exit status 1 when a rule is broken, with what breaks it on stderr.
set -uo pipefail

verbose=false
if [ "${1:-}" = -v ]; then
	verbose=true
	shift
fi
build=""
[ $# -gt 0 ] && build=$(realpath "$1")
cd "$(dirname "$0")/../src" || exit 2
status=0

# "FILE HEADER" for every #include "..." in src/, HEADER as the path of the file it names.
includes() {
	local f h
	find . -name '*.[ch]' | sed 's|^\./||' | sort | while read -r f; do
		grep -o '^#include "[^"]*"' "$f" | sed 's/^#include "//; s/"$//' | while read -r h; do
			if [ -e "$(dirname "$f")/$h" ]; then
				h=$(realpath --relative-to=. "$(dirname "$f")/$h")
			fi
			echo "$f $h"
		done
	done
}

# "OBJECT OBJECT" for every call (or use of a variable) from one object file of libkeeper.a
# to another, objects named as meson names them (proxy/relay.c: proxy_relay).
calls() {
	nm -A -g "$1" | awk '
		{ split($1, a, ":"); obj = a[2]; sub(/.*\//, "", obj); sub(/\.c\.o$/, "", obj) }
		$2 == "U" { use[++k] = obj " " $3; next }
		NF == 3 { def[$3] = obj }
		END {
			for (i = 1; i <= k; i++) {
				split(use[i], u, " ")
				if ((u[2] in def) && def[u[2]] != u[1])
					print u[1], def[u[2]]
			}
		}' | sort -u
}

# The directory a path is in: "." for the top level, else the mode's.
dir_of() {
	case $1 in
	*/*) echo "${1%%/*}" ;;
	*) echo . ;;
	esac
}

edges=$(includes | while read -r f h; do
	from=$(dir_of "$f")
	to=$(dir_of "$h")
	if [ "$to" != . ] && [ "$from" != "$to" ]; then
		echo "check-layout: $f includes $h, a header of mode $to/" >&2
		echo BROKEN
	fi
	a=${f%.*}
	b=${h%.*}
	[ "$a" != "$b" ] && echo "$a $b"
done | sort -u)

if grep -q '^BROKEN$' <<<"$edges"; then
	status=1
fi
edges=$(grep -v '^BROKEN$' <<<"$edges")
if ! cycle=$(tsort <<<"$edges" 2>&1 >/dev/null); then
	echo "check-layout: the include graph has a cycle:" >&2
	echo "$cycle" >&2
	status=1
fi
$verbose && awk '{ print $1, "->", $2 }' <<<"$edges"

if [ -n "$build" ]; then
	lib=$build/src/libkeeper.a
	if [ ! -f "$lib" ]; then
		echo "check-layout: $lib not found" >&2
		exit 2
	fi
	edges=$(calls "$lib")
	if ! cycle=$(tsort <<<"$edges" 2>&1 >/dev/null); then
		echo "check-layout: the object files of $lib call each other in a cycle:" >&2
		echo "$cycle" >&2
		status=1
	fi
	$verbose && awk '{ print $1, "calls", $2 }' <<<"$edges"
fi
exit $status
