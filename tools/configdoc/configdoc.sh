#!/usr/bin/env bash
# configdoc.sh HEADER BINARY... - prints docs/CONFIG.md: HEADER, then the
# configuration tables the service binaries print with --print-config
# (libs/svc/cfgdoc.h), as Markdown. The entries every libs/svc service
# shares (origin "libs/svc") are printed once; they must be the same in
# every binary (they are one table in libs/svc/svc.c), else this fails.
# Services appear in the order given.
set -euo pipefail
header="$1"
shift
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for bin in "$@"; do
  name="$(basename "$bin")"
  if ! "$bin" --print-config >"$tmp/$name.tsv" 2>"$tmp/$name.err"; then
    echo "configdoc: $bin --print-config failed:" >&2
    cat "$tmp/$name.err" >&2
    exit 1
  fi
  printf '%s\n' "$name" >>"$tmp/order"
done
cat "$header"
# shellcheck disable=SC2046
awk -F'\t' -v order="$tmp/order" '
  function esc(s) { gsub(/\|/, "\\|", s); gsub(/</, "\\&lt;", s); gsub(/>/, "\\&gt;", s); return s }
  function dur(ms) {
    if (ms == 0) return "0"
    if (ms % 3600000 == 0) return (ms / 3600000) "h"
    if (ms % 60000 == 0) return (ms / 60000) "m"
    if (ms % 1000 == 0) return (ms / 1000) "s"
    return ms "ms"
  }
  function row(f,   def, bounds, secret) {
    if (f[5] ~ /required/) def = "**required**"
    else if (f[4] == "-") def = "—"
    else if (f[4] == "\"\"") def = "`\"\"` (empty)"
    else def = "`" f[4] "`"
    if (f[6] == "-") bounds = ""
    else if (f[3] == "duration") bounds = dur(f[6] + 0) " – " dur(f[7] + 0)
    else bounds = f[6] " – " f[7]
    secret = f[5] ~ /secret/ ? "yes" : ""
    return "| `" f[2] "` | " f[3] " | " def " | " bounds " | " secret " | " esc(f[8]) " |"
  }
  function table_head() {
    print "| variable | type | default | bounds | secret | description |"
    print "|---|---|---|---|---|---|"
  }
  FNR == 1 { svc = FILENAME; sub(/^.*\//, "", svc); sub(/\.tsv$/, "", svc) }
  /^#/ { next }
  NF != 8 { printf "configdoc: %s: bad line %d\n", svc, FNR > "/dev/stderr"; bad = 1; exit 1 }
  {
    split($0, f, "\t")
    if ($1 == "libs/svc") {
      oncommon[svc] = 1
      key = svc SUBSEP (++ncom[svc])
      com[key] = $0
    } else {
      own[svc, ++nown[svc]] = row(f)
    }
  }
  END {
    if (bad) exit 1
    n = 0
    while ((getline s < order) > 0) names[++n] = s
    # The common table, once: the same in every binary that has it.
    first = ""
    users = ""
    for (i = 1; i <= n; i++) {
      s = names[i]
      if (!(s in oncommon)) continue
      if (first == "") first = s
      else {
        if (ncom[s] != ncom[first]) { print "configdoc: common entries differ between " first " and " s > "/dev/stderr"; exit 1 }
        for (j = 1; j <= ncom[s]; j++)
          if (com[s SUBSEP j] != com[first SUBSEP j]) { print "configdoc: common entries differ between " first " and " s > "/dev/stderr"; exit 1 }
      }
      users = users (users == "" ? "" : ", ") s
    }
    if (first != "") {
      print ""
      print "## Common to every service on libs/svc"
      print ""
      print "Read by `svc_main` (`libs/svc/svc.c`) in " users ", before each service'"'"'s own entries."
      print ""
      table_head()
      for (j = 1; j <= ncom[first]; j++) { split(com[first SUBSEP j], f, "\t"); print row(f) }
    }
    for (i = 1; i <= n; i++) {
      s = names[i]
      print ""
      print "## " s
      print ""
      if (s in oncommon)
        print "`services/" s "/main.c`, besides the common entries above."
      else
        print "`services/" s "`: not on libs/svc, so this is its whole configuration."
      print ""
      table_head()
      for (j = 1; j <= nown[s]; j++) print own[s, j]
    }
  }' $(sed "s|.*|$tmp/&.tsv|" "$tmp/order")
