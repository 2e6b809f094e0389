#!/usr/bin/env bash
# needed-by: test
# actionlint (GitHub Actions workflow linter), built from its Go module at a pinned
# version and cached outside the work tree; tests/infra/tools/release/test_workflows.py runs it.
set -euo pipefail
# renovate: datasource=go depName=github.com/rhysd/actionlint
VERSION=v1.7.10
CACHE="${HOME}/.cache/mobius-preview-worker/actionlint-${VERSION}"
BIN="${CACHE}/actionlint"
if [ -x "$BIN" ] && "$BIN" -version 2>/dev/null | head -1 | grep -qx "${VERSION#v}"; then
  exit 0
fi
export PATH="/usr/local/go/bin:${PATH}"
command -v go >/dev/null || { echo "20-actionlint: go is not installed (need Go >= 1.23)" >&2; exit 1; }
mkdir -p "$CACHE"
# -ldflags sets the version actionlint reports (it otherwise prints "(devel)").
GOBIN="$CACHE" GOFLAGS=-trimpath go install \
  -ldflags "-s -w -X github.com/rhysd/actionlint.version=${VERSION#v}" \
  "github.com/rhysd/actionlint/cmd/actionlint@${VERSION}"
"$BIN" -version | head -1
