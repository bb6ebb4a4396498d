#!/usr/bin/env bash
# banned.sh - fails when C sources call functions this codebase bans (after
# curl's checksrc): unbounded or locale/thread-unsafe string and number
# functions. Use snprintf, str_copy (libs/base/strutil.h), strtol/strtoll
# with end-pointer and errno checks, strtok_r, gmtime_r instead, and
# time_sleep_ms (libs/base/timeutil.h) for every sleep.
#
# Usage: tools/lint/banned.sh [dir...]   (default: libs services clients tests tools)
set -euo pipefail
# Under `bazel test` this script is a symlink into the source tree; resolve
# it so the whole tree is scanned (the test is tagged local+external, so it
# is never cached and always sees the current sources).
cd "$(dirname "$(readlink -f "$0")")/../.."
dirs=("$@")
[[ ${#dirs[@]} -gt 0 ]] || dirs=(libs services clients tests tools)
pattern='\b(sprintf|vsprintf|strcpy|strcat|strncpy|strncat|strtok|gets|atoi|atol|atoll|atof|gmtime|localtime|ctime|asctime|tmpnam|mktemp|rand|srand|usleep|nanosleep)[[:space:]]*\('
found=0
scanned=0
while IFS= read -r -d '' f; do
  # Lines may opt out with a trailing "/* banned-ok: reason */".
  scanned=$((scanned + 1))
  if grep -nE "$pattern" "$f" | grep -v 'banned-ok' | sed "s|^|$f:|"; then found=1; fi
done < <(find "${dirs[@]}" \( -name '*.c' -o -name '*.h' \) ! -name '*.pb-c.*' -print0 2>/dev/null)
if [[ $scanned -lt 5 ]]; then
  echo "only $scanned files found under ${dirs[*]}: wrong directory?" >&2
  exit 1
fi
if [[ $found -ne 0 ]]; then
  echo "banned functions used (see tools/lint/banned.sh for replacements)" >&2
  exit 1
fi
echo "no banned functions in $scanned files"
