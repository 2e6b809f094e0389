#!/usr/bin/env bash
# needed-by: up test
# Build the MinIO server the artifact-store tests run on loopback (tests/worker/store_kit.py), and
# the demo's artifact store (`./dev up`: its pods write previews to it, infra/tools/demo/minio.py).
# `go install` from its published Go module at a pinned version (MinIO publishes no semver tags,
# so the pin is the Go proxy's pseudo-version of a master commit). Cached by version under
# ~/.cache/mobius-preview-worker/minio-<ver>/: a rerun takes well under a second.
set -euo pipefail
MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"
CACHE="${HOME}/.cache/mobius-preview-worker/minio-${MINIO_VERSION}"
if [[ -x "${CACHE}/minio" ]]; then
  exit 0
fi
mkdir -p "$(dirname "${CACHE}")"
exec 9>"${CACHE}.lock"
flock 9  # a concurrent run waits, then finds the binary
if [[ -x "${CACHE}/minio" ]]; then
  exit 0
fi
GO="$(command -v go || echo /usr/local/go/bin/go)"
[[ -x "${GO}" ]] || { echo "40-minio.sh: go is not installed (looked on PATH and in /usr/local/go)" >&2; exit 1; }
mkdir -p "${CACHE}.partial"
start=$(date +%s)
# nice: other Go builds (the toolchain) may be running on the same 2 cores.
GOBIN="${CACHE}.partial" CGO_ENABLED=0 nice -n 10 "${GO}" install -trimpath "github.com/minio/minio@${MINIO_VERSION}"
rm -rf "${CACHE}"
mv "${CACHE}.partial" "${CACHE}"
echo "40-minio.sh: built minio ${MINIO_VERSION} in $(( $(date +%s) - start )) s -> ${CACHE}/minio"
