#!/usr/bin/env bash
# needed-by: up test
# The image tests' inputs, cached under ~/.cache/mobius-preview-worker/ and keyed by what
# they are made from (see README "The worker image"):
#   image-base/<hash>/  the debootstrap'd Debian bookworm + python3 base (~2 min the first time)
#   wheelhouse/<hash>/  the locked runtime wheels, so the test builds reach no index (~20 s)
# Both are instant when cached.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" = 0 ]; then
  .venv/bin/python -m infra image base >/dev/null
else
  # debootstrap needs root; the cache stays in this user's home.
  sudo env HOME="$HOME" XDG_CACHE_HOME="${XDG_CACHE_HOME:-}" .venv/bin/python -m infra image base >/dev/null
fi
.venv/bin/python -m infra image wheels >/dev/null
