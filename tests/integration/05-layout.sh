#!/bin/bash
# 05-layout: src/ keeps the layout docs/design.md ("Pieces") promises — no file of the top
# level includes a mode's header, no mode includes another's, and the units of src/ neither
# include nor call each other in a circle (scripts/check-layout.sh, on this build's library).
# timeout: 60
. "$(dirname "$0")/../lib.sh"

need_cmd nm
need_cmd tsort
lib=$(find "$BUILD_DIR/src" -name libkeeper.a | head -n1)
[ -n "$lib" ] || fail "no libkeeper.a under $BUILD_DIR/src"
"$FK_SRCDIR/scripts/check-layout.sh" "$BUILD_DIR" || fail "src/ breaks a layout rule (above)"
log "layout rules hold"
