#!/usr/bin/env bash
# needed-by: test
# Build the cluster add-ons the autoscaling and secrets tests run against the local cluster:
# prometheus-adapter, the External Secrets Operator and KEDA (operator and metrics server), from their Go modules (pinned in
# infra/tools/local/toolchain/versions.py), cached under ~/.cache/mobius-preview-worker/toolchain/ like the rest.
# `./dev up` does not build them: the dev stack's demo needs none of them (the real node's kubelet
# is 44-kubelet.sh's).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec .venv/bin/python -m infra local bootstrap --only prometheus-adapter external-secrets keda-operator keda-metrics-apiserver
