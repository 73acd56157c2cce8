#!/usr/bin/env bash
# Runs the README's quick tour as written and fails if any command fails or
# any HTTP answer is an error, so the tour cannot drift from the binaries.
#
# Every ```sh block between "## A quick tour" and the next "## " heading is
# run, in order, in one shell, as a reader pasting them would. Two changes
# keep CI fast and the run deterministic, and nothing else is changed:
#   - the debug build instead of --release (same code, minutes less to build);
#   - a 2 s pause after each command sent to the background, where a reader
#     takes that long to type the next one.
# `curl` answers of 400 and above fail the check, except the one the tour
# documents: an injected fault (header `strait-proxy-error: fault-injected`).
# Ports used: 4140, 4143, 4191, 8086, 9081-9083 on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

script=$(awk '
  /^## A quick tour/ { on = 1; next }
  on && /^## / { on = 0 }
  on && /^```sh$/ { code = 1; next }
  on && code && /^```$/ { code = 0; next }
  on && code { print }
' README.md)
[ -n "$script" ] || { echo "tour: no sh blocks under '## A quick tour' in README.md" >&2; exit 1; }

script=$(printf '%s\n' "$script" |
  sed -e 's/cargo build --release/cargo build/' -e 's#target/release/#target/debug/#g' |
  awk '{ print } /&$/ || /& *#/ || /& PROXY/ { print "sleep 2" }')

failures=$(mktemp)
trap 'rm -f "$failures"' EXIT

# Each curl of the tour: runs as written, then its status is checked.
curl() {
  local - headers status
  set +x # the tour's own commands are traced, not this wrapper's
  headers=$(mktemp)
  local rc=0
  command curl -D "$headers" "$@" || rc=$?
  # 23: the reader's `| head` closed the pipe early, which is not an error.
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 23 ]; then echo "curl $*: exit $rc" >>"$failures"; fi
  status=$(awk 'toupper($1) ~ /^HTTP\// { s = $2 } END { print s + 0 }' "$headers")
  if [ "$status" -ge 400 ] && ! grep -qi '^strait-proxy-error: fault-injected' "$headers"; then
    echo "curl $*: HTTP $status" >>"$failures"
  fi
  rm -f "$headers"
}
export -f curl
export failures

echo "tour: running the README's quick tour ($(printf '%s\n' "$script" | grep -vc '^sleep 2$') commands)"
set +e
bash -euo pipefail -c "
trap 'kill \$(jobs -p) 2>/dev/null; wait 2>/dev/null' EXIT
set -x
$script
" 2>&1 | sed 's/^/tour| /'
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -ne 0 ] || [ -s "$failures" ]; then
  echo "tour: FAILED (exit $rc)" >&2
  sed 's/^/tour: /' "$failures" >&2
  exit 1
fi
echo "tour: every command of the README's quick tour worked"
