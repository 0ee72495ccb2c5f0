#!/usr/bin/env bash
# Fails when the committed generated code differs from what `buf generate` makes
# from the protos now: regenerate into a scratch directory and compare.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
PATH="$PWD/node_modules/.bin:$PATH" buf generate --output "$tmp"
if ! diff -r "$tmp/clients/src/gen" clients/src/gen; then
  echo "generated code is stale: run 'npm run generate' and commit the result" >&2
  exit 1
fi
echo "generated code is current"
