#!/bin/sh
# Registers fanotify.ext in osqueryd's autoload list by adding exactly one line
# to extensions.load, leaving every other line as it is. Runs after install and
# after upgrade (deb "configure", rpm %post $1 = 1 or 2); a second run changes
# nothing. FANOTIFY_PKG_ROOT prefixes every path, for tests only: a real
# install leaves it unset.
set -eu

ext=/usr/lib/osquery/extensions/fanotify.ext
# osqueryd trims blanks, \r included, around each line before loading the
# path: such a line is ours too.
ours='^[[:space:]]*/usr/lib/osquery/extensions/fanotify\.ext[[:space:]]*$'
# Where a symlink points, even a dangling one: the list is written there.
load=$(readlink -m "${FANOTIFY_PKG_ROOT:-}/etc/osquery/extensions.load")

if [ -f "$load" ] && grep -q "$ours" "$load"; then
	exit 0
fi
mkdir -p "$(dirname "$load")"
# A last line without its newline would otherwise be joined to ours.
if [ -s "$load" ] && [ -n "$(tail -c 1 "$load")" ]; then
	printf '\n' >>"$load"
fi
printf '%s\n' "$ext" >>"$load"
