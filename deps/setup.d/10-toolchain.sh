#!/usr/bin/env bash
# needed-by: up test
# Build the pinned Go toolchain (pulumi CLI, its Python language host and Kubernetes provider
# plugin, kube-apiserver, controllers, kubectl, KWOK) into
# ~/.cache/mobius-preview-worker/toolchain/<name>-<version>/. Cached by version: a rerun takes
# about a second; a cold run prints each build's time (see README, "Local toolchain").
set -euo pipefail
cd "$(dirname "$0")/../.."
exec .venv/bin/python -m infra local bootstrap
