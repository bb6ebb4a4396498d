#!/usr/bin/env bash
# Runs deploy/k8s/<script> (check.py or check_selftest.py) on the manifests
# from Bazel's runfiles, or from the source tree when run by hand.
set -euo pipefail

script="${1:?usage: check_test.sh check.py|check_selftest.py}"
if [[ -n "${TEST_SRCDIR:-}" ]]; then
  top="$TEST_SRCDIR/${TEST_WORKSPACE:-platform}"
else
  top="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
fi

# Debian's python3 has python3-yaml; a python3 earlier on PATH (pyenv,
# virtualenv) may not.
py=python3
if [[ -x /usr/bin/python3 ]] && /usr/bin/python3 -c 'import yaml' 2>/dev/null; then
  py=/usr/bin/python3
fi
if ! "$py" -c 'import yaml' 2>/dev/null; then
  echo "check_test.sh: $py has no PyYAML (Debian: apt-get install python3-yaml)" >&2
  exit 1
fi

# Runfiles are symlinks; the scripts copy the tree with them resolved.
exec "$py" "$top/deploy/k8s/$script" \
  --root "$top/deploy/k8s" \
  --dockerfile "$top/deploy/docker/Dockerfile" \
  --monitoring "$top/deploy/monitoring"
