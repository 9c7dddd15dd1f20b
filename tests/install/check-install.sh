#!/usr/bin/env bash
# tests/install/check-install.sh BUILD_DIR - installs BUILD_DIR into a scratch prefix and checks
# what lands there: the kt that runs, the agent's unit pointing at that kt, docs, example config.
set -euo pipefail
build="$1"
prefix="$(mktemp -d)"
trap 'rm -rf "$prefix"' EXIT
fail() { echo "install check: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$prefix" >/dev/null
kt="$prefix/bin/kt"
[ -x "$kt" ] || fail "no executable at bin/kt"
"$kt" --version | grep -q '^kt ' || fail "installed kt --version did not print 'kt ...'"
unit="$prefix/lib/systemd/user/kt-agent.service"
[ -f "$unit" ] || fail "no systemd user unit at lib/systemd/user/kt-agent.service"
grep -qx "ExecStart=$kt agent run --log-format json" "$unit" ||
    fail "the unit's ExecStart does not name the installed kt: $(grep ExecStart "$unit")"
grep -q '@' "$unit" && fail "the unit kept an unsubstituted @VAR@"
doc="$prefix/share/doc/kt"
for f in README.md configuration.md internals/agent-wire.md examples/policy-config.yaml; do
    [ -f "$doc/$f" ] || fail "missing share/doc/kt/$f"
done
doc_ref="$(sed -n 's#^Documentation=file://##p' "$unit")"
[ -f "$doc_ref" ] || fail "the unit's Documentation= names a file that was not installed: $doc_ref"
# The installed example is the one kt's own checker accepts.
OPENAI_API_KEY=sk-install-check "$kt" policy check "$doc/examples/policy-config.yaml" >/dev/null ||
    fail "kt policy check rejects the installed example config"
echo "install check: ok ($prefix)"
