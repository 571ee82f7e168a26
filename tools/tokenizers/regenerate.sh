#!/usr/bin/env bash
# Regenerates the tokenizer test fixtures in tests-java/src/test/resources/tokenizers/ from the
# independent implementations: token ids from the JavaScript tokenizer @lenml/tokenizers (node),
# chat-template renderings from Python jinja2 (Debian's python3-jinja2, /usr/bin/python3).
# The inputs (texts, conversations, snippets) live in the two generator scripts beside this one.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CACHE="${KVASIR_TOKENIZER_CACHE:-$HOME/.cache/kvasir/tokenizers}"
OUT="$ROOT/tests-java/src/test/resources/tokenizers"
PYTHON="${KVASIR_JINJA_PYTHON:-/usr/bin/python3}"

"$HERE/fetch.sh" --with-js
if ! "$PYTHON" -c 'import jinja2' 2>/dev/null; then
  echo "[tokenizers] $PYTHON has no jinja2: apt-get install python3-jinja2 (ci/lib.sh kv_install_packages does)" >&2
  exit 1
fi
mkdir -p "$OUT"
node "$HERE/expected_ids.mjs" "$CACHE" "$OUT"
"$PYTHON" "$HERE/render_templates.py" "$CACHE" "$OUT/chat_templates.json"
echo "[tokenizers] fixtures written to $OUT; review with git diff" >&2
