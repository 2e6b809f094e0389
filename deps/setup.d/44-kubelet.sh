#!/usr/bin/env bash
# needed-by: up test
# Build the kubelet and kube-proxy of the real node (issue 31, docs/real-node.md), pinned in
# infra/tools/local/toolchain/versions.py and cached under ~/.cache/mobius-preview-worker/toolchain/
# like the rest: `./dev up` runs the dev stack's worker and API as real pods on it, and the e2e
# tests start it. (`local up --real-node` also builds them when missing.)
set -euo pipefail
cd "$(dirname "$0")/../.."
exec .venv/bin/python -m infra local bootstrap --only kubelet kube-proxy
