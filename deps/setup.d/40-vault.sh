#!/usr/bin/env bash
# needed-by: test
# A Vault dev server for tests/infra/test_vault_server.py (`secrets.provider: vault` against a
# real Vault API on loopback), built from the published hashicorp/vault Go module at a pinned
# version and cached outside the work tree. A rerun is instant; a cold build of the full Vault
# binary took 27 min here (2 busy cores, niced) plus ~5 min of module downloads.
# v1.21.0 (not v1.21.4): the nested ./sdk module is not in the parent zip, and v1.21.4's tree
# needs an sdk that matches no published sdk version (sdk v0.21.0 fails to compile with it).
set -euo pipefail
VERSION=v1.21.0
CACHE="${HOME}/.cache/mobius-preview-worker/vault"
BIN="${CACHE}/vault-${VERSION}"
if [ -x "$BIN" ]; then
  exit 0
fi
export PATH="/usr/local/go/bin:${PATH}" GOFLAGS=-mod=mod GOTOOLCHAIN=local
command -v go >/dev/null || { echo "40-vault: go is not installed (need Go >= 1.25)" >&2; exit 1; }
SRC="${CACHE}/src-${VERSION}"
mkdir -p "$CACHE"
dir=$(go mod download -json "github.com/hashicorp/vault@${VERSION}" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
rm -rf "$SRC"; cp -r "$dir" "$SRC"; chmod -R u+w "$SRC"
# go.mod replaces these modules with ./api, ./sdk, …, which are separate modules and so not
# in the parent's zip: put the versions go.mod requires there.
for pair in api@v1.22.0 sdk@v0.20.0 api/auth/approle@v0.1.0 api/auth/kubernetes@v0.10.0 api/auth/userpass@v0.1.0; do
  sub=${pair%@*} ver=${pair#*@}
  subdir=$(go mod download -json "github.com/hashicorp/vault/${sub}@${ver}" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  mkdir -p "$SRC/$sub"; cp -r "$subdir/." "$SRC/$sub/"; chmod -R u+w "$SRC/$sub"
done
(cd "$SRC" && nice -n 19 go build -trimpath -o "$BIN.tmp" .)
mv "$BIN.tmp" "$BIN"
rm -rf "$SRC"
