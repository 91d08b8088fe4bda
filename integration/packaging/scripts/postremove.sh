#!/bin/sh
# Removes fanotify.ext's line from osqueryd's autoload list when the package
# is removed (deb "remove"/"purge", rpm %postun $1 = 0). An upgrade (deb
# "upgrade", rpm $1 = 1) keeps the line: the new version is already in place.
# Other lines are left as they are. FANOTIFY_PKG_ROOT prefixes every path, for
# tests only: a real removal leaves it unset.
set -eu

case "${1:-}" in
remove | purge | abort-install | disappear | 0) ;;
*) exit 0 ;;
esac

# osqueryd trims blanks, \r included, around each line before loading the
# path: every such line goes, or osqueryd keeps trying to load the binary.
ours='^[[:space:]]*/usr/lib/osquery/extensions/fanotify\.ext[[:space:]]*$'
load="${FANOTIFY_PKG_ROOT:-}/etc/osquery/extensions.load"

if [ ! -f "$load" ] || ! grep -q "$ours" "$load"; then
	exit 0
fi
kept="$load.fanotify-remove"
# grep exits 1 when no other line is left: that is not an error.
grep -v "$ours" "$load" >"$kept" || [ $? -eq 1 ]
# Rewrite in place so that the file keeps its owner and mode.
cat "$kept" >"$load"
rm -f "$kept"
