#!/usr/bin/env bash
# Installs the pinned openai npm client under tools/compat/node_modules (untracked, and outside
# the GPU bundle, which packs only git-tracked files). Needs node >= 18 and the npm registry (or
# its mirror); without them it says so and returns 1, and ServerOpenAiCompatTest skips.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
command -v node >/dev/null && command -v npm >/dev/null || { echo "node and npm are not installed" >&2; exit 1; }
if [[ -f "$here/node_modules/openai/package.json" ]] &&
   grep -q '"version": "7.55.0"' "$here/node_modules/openai/package.json"; then
  echo "openai 7.55.0 present"
  exit 0
fi
cd "$here" && npm install --no-audit --no-fund --no-save --loglevel=error
