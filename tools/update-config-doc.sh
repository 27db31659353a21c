#!/usr/bin/env bash
# Regenerate the key list at the end of docs/config.md from `dd2 config --schema`.
# tests/cli/config_doc.sh fails when the two differ.
set -euo pipefail
cd "$(dirname "$0")/.."
doc=docs/config.md
marker='## All keys (`dd2 config --schema`)'
head=$(awk -v m="$marker" '{print} $0==m {exit}' "$doc")
{ printf '%s\n\n```\n' "$head"; ./build/dd2 config --schema; printf '```\n'; } >"$doc.tmp"
mv "$doc.tmp" "$doc"
echo "updated $doc"
