#!/usr/bin/env bash
# docs/config.md ends with the output of `dd2 config --schema` (tools/update-config-doc.sh).
source "$(dirname "$0")/lib.sh"
want=$("$DD2" config --schema)
have=$(awk '/^## All keys/{f=1; next} f && /^```$/{if (inside) exit; inside=1; next} inside' docs/config.md)
if [ "$want" = "$have" ]; then pass key_list_current; else fail key_list_current "docs/config.md is stale: run tools/update-config-doc.sh"; fi
cli_done
