#!/usr/bin/env bash
# Installs the Debian packages the reference model's prose comes from (public domain or
# permissive; see models/kvasir-ref/MODEL_CARD.md) and builds the corpus:
#   tools/refmodel/corpus.sh [OUT_DIR]     (default build/refmodel/corpus)
# OUT_DIR/train.txt (trained on) and heldout.txt (never trained on; shipped as
# models/kvasir-ref/heldout-prose.txt for evaluation haystacks and perplexity).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$root/build/refmodel/corpus}"
# bible-kjv: the `bible` program that reads bible-kjv-text's compressed KJV (the program is GPL;
# only the public-domain text it prints is used).
wanted=(bible-kjv bible-kjv-text dict-devil dict-jargon dict-wn)
missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=()
  [[ $(id -u) -ne 0 ]] && sudo=(sudo)
  echo "[kvasir] installing: ${missing[*]}" >&2
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if [[ -f $out/train.txt && $out/train.txt -nt $root/tools/refmodel/corpus.py ]]; then
  echo "[kvasir] corpus up to date: $out" >&2
  exit 0
fi
python3 "$root/tools/refmodel/corpus.py" "$out"
