#!/usr/bin/env bash
# The GPU path, the same for every issue.
#
#   ci/gpu.sh pack [--native-only | --with-corpus]
#                             (here) build libkvasir + gtest binaries for sm_90, the Java jars and
#                             a jlink runtime; pack what the GPU run needs into .gpu/bundle.tar.xz;
#                             refuse when the transfer (tracked tree + bundle) would exceed 63 MiB.
#                             --native-only skips Java (quick kernel iterations: gtest, bench);
#                             --with-corpus adds the reference model's training prose (the
#                             refmodel step needs it; ~3 MB that other runs do without).
#   ci/gpu.sh remote [STEP..] (on the GPU machine, through the device tool, carry [".gpu"]):
#                             unpack and run the steps (default: gtest java bench), writing logs
#                             and results to $OUT, each stamped with commit, nvidia-smi line, date.
#
# Steps: gtest  - every native gtest (the CUDA cases against the double-precision reference)
#        java   - the Java smoke test: `kvasir info --roofline` through JavaCPP (self-check
#                 compares the CUDA kernels with the CPU and a Java reference; presets show the device)
#        bench  - kernel benchmarks against the roofline measured in the same run
#        parity - the model runtime against transformers on random checkpoints (tools/peers/hf_parity.py)
#        speed  - decode and prefill of synthetic llama3-8b against the roofline and transformers
#        ncu    - Nsight Compute over the decode kernels (batch 1 and 16) and one prefill chunk of
#                 synthetic llama3-8b: time and DRAM throughput per kernel (ncu-*.csv)
#        refmodel - train the reference model (tools/refmodel/train.py; the task stream comes from
#                 the carried kvasir-bench jar, the prose from the carried corpus) -> refmodel.tar
#                 holding the Hugging Face directory, train_log.jsonl and eval.json.
#                 KVASIR_REFMODEL_ARGS adds arguments (e.g. "--steps 100" for a pipeline check).
#        paged  - the paged KV kernels: CUDA gtests, then decode / prefill / Quest benchmarks
#                 against the roofline, the dense kernels and torch SDPA (JSON lines per case)
#        pagedstep - the CUDA paged model step: its gtests (against the slot step; graphs bit for
#                 bit), the reference model's greedy answer on slot caches and under the full and
#                 Quest policies, and synthetic llama3-8b decode on slot caches against pages
#        refeval - the shipped reference model on Kvasir's CUDA engine over the long-context suite
#                 (kvasir-bench eval, held-out seeds and haystack) -> refeval-cuda.json
#        serve  - end-to-end serving of synthetic llama3-8b (kvasir-bench serve, docs/benchmarks.md):
#                 offline 512 requests (prompts 1K-8K, 256 tokens out), its first 64 on Kvasir and on
#                 transformers' batched generate (tools/peers/hf_generate_bench.py), Poisson arrivals
#                 at two rates (50% and 90% of the offline request rate unless KVASIR_SERVE_RATES),
#                 a 4K shared prefix with and without prefix caching -> serve-*.json. Knobs (env):
#                 KVASIR_SERVE_REQUESTS (512), _SUBSAMPLE (64), _PROMPT_MIN/_PROMPT_MAX (1024/8192),
#                 _OUTPUT_TOKENS (256), _SEED (0), _POLICY (full), _MAX_BATCH (256),
#                 _STEP_TOKENS (8192), _KV_BUDGET (90GiB), _RATES ("R1 R2" requests/s),
#                 _ONLINE_SECONDS (40: online runs get rate x this many requests), _PREFIX_TOKENS
#                 (4096), _PREFIX_REQUESTS (64), _PREFIX_RATE (2), _HF (1; 0 skips transformers),
#                 _PARTS ("offline subsample hf online prefix": a subset runs only those), _MODEL and
#                 _DEVICE (a dry run of the step on the CPU: tiny:llama, cpu, small sizes).
#        bench6 - cache policies side by side (kvasir-bench run, docs/benchmarks.md): full and
#                 quest:k=64 on synthetic llama3-8b, the same offline workload, Poisson arrivals at
#                 two rates and the pp-tg matrix (prefill speed at pp lengths, decode speed at
#                 contexts and batches) -> bench6/<date>-<workload>-<policy>.json + summary.json,
#                 one call capped at KVASIR_BENCH6_TIMEOUT (510 s). Knobs (env): KVASIR_BENCH6_POLICIES
#                 ("full;quest:k=64"), _WORKLOADS (offline,online,pp-tg), _REQUESTS (128),
#                 _PROMPT_LEN (1024:4096), _OUTPUT_LEN (128), _RATES ("3 6"), _MAX_CONCURRENCY (none),
#                 _PP ("512 2048 8192"), _TG ("1024 4096 16384"), _TG_BATCH ("1 16"), _TG_TOKENS (64),
#                 _SLO (ttft_ms=2000,tpot_ms=100), _MAX_BATCH (256), _STEP_TOKENS (8192), _KV_BUDGET
#                 (90GiB), _SEED (0), _EXTRA (more arguments), _MODEL and _DEVICE (a dry run on the
#                 CPU: tiny:llama, cpu, with small sizes).
#        serveload - `kvasir serve` on loopback driven by N closed-loop streaming clients (token-id
#                 prompts, ignore_eos) for a bounded time (io.kvasir.server.ServeLoad): TTFT/TPOT
#                 percentiles, throughput, 429s, server RSS and device memory at start and end,
#                 /metrics before and after -> serveload.json, serveload-metrics-{start,end}.txt.
#                 Knobs (env): KVASIR_SERVELOAD_MODEL (synthetic:llama3-8b), _DEVICE (cuda), _POLICY
#                 (full), _CLIENTS (256), _SECONDS (120), _PROMPT_TOKENS (1024), _MAX_TOKENS (256),
#                 _MAX_BATCH (256), _KV_BUDGET (90GiB), _VOCAB (128256); the whole step is capped
#                 at 400 s.
#        quant  - the quantized KV kernels (Kitty, KIVI-2; issue 8): their CUDA gtests against the
#                 CPU and the double reference, then the decode benchmark against the bf16 paged
#                 decode and the read roofline (kvasir_bench_quant_decode) -> quant-decode.json.
#                 Knobs (env): KVASIR_QUANT_BENCH_ARGS (default: batch 1 8 32 64 x ctx 8K 32K 128K,
#                 every format), KVASIR_QUANT_GTEST_FILTER.
# KVASIR_BENCH_ARGS adds arguments to the benchmark (e.g. "--op merge_states").
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
KV_ROOT="$(cd "$here/.." && pwd)"
BUNDLE_DIR="$KV_ROOT/.gpu"
BUNDLE="$BUNDLE_DIR/bundle.tar.xz"
LIMIT_BYTES=$((63 * 1024 * 1024))  # the device takes 64 MiB; 1 MiB of margin
JLINK_MODULES="java.base,java.logging,java.management,java.naming,java.xml,java.desktop,jdk.unsupported,jdk.httpserver,java.net.http"

pack() {
  local native_only=0 corpus=0
  case "${1:-}" in
    --native-only) native_only=1 ;;
    --with-corpus) corpus=1 ;;
    "") ;;
    *) echo "pack: unknown option $1 (--native-only or --with-corpus)" >&2; exit 2 ;;
  esac
  source "$here/lib.sh"
  cd "$KV_ROOT"
  kv_build_lock
  kv_step install-packages kv_install_packages
  kv_step build-native kv_build_native

  local stage="$BUNDLE_DIR/stage"
  rm -rf "$stage" && mkdir -p "$stage/bin" "$stage/lib"
  cp "$KV_BUILD_DIR/libkvasir.so" "$KV_BUILD_DIR/tests-native/kvasir_tests" \
     "$KV_BUILD_DIR/tests-native/kvasir_bench_ops" "$KV_BUILD_DIR"/tests-native/kvasir_bench_paged_{decode,prefill,quest} "$KV_BUILD_DIR/tests-native/kvasir_bench_quant_decode" \
     "$stage/bin/"
  strip --strip-unneeded "$stage"/bin/*
  ((native_only)) || pack_java "$stage"
  ((corpus)) && pack_corpus "$stage"
  git -C "$KV_ROOT" rev-parse HEAD > "$stage/COMMIT" 2>/dev/null || echo unknown > "$stage/COMMIT"
  git -C "$KV_ROOT" status --porcelain | grep -q . && echo "+uncommitted" >> "$stage/COMMIT" || true
  rm -f "$BUNDLE"
  # bin/libkvasir.so and the kvasir-native jar (which holds the same bytes, stored) go first and
  # next to each other, so xz's window sees both; then everything else.
  (cd "$stage" && { ls bin/libkvasir.so lib/kvasir-native-*.jar 2>/dev/null || true
                    find . -mindepth 1 ! -type d | sed 's|^\./||' | grep -v -e '^bin/libkvasir\.so$' -e '^lib/kvasir-native-'
                  } > "$BUNDLE_DIR/files.txt")
  kv_step pack env XZ_OPT='-9 -T1' tar -C "$stage" -cJf "$BUNDLE" --no-recursion -T "$BUNDLE_DIR/files.txt"
  rm -f "$BUNDLE_DIR/files.txt"
  rm -rf "$stage"
  check_size
  kv_say "ready: run 'bash ci/gpu.sh remote' on the device with carry [\".gpu\"]"
}

# Jars (linux-x86_64 only) and a jlink runtime with just the modules the CLI needs.
pack_java() {
  local stage=$1
  kv_step build-java kv_maven -q -DskipTests package
  # The CLI jar's manifest names its dependencies as lib/<jar>, relative to itself.
  cp "$KV_CLI_JAR" "$stage/kvasir-cli.jar"
  cp "$KV_BENCH_JAR" "$stage/kvasir-bench.jar"
  # Runtime jars, linux-x86_64 only: other platforms' natives would only add weight.
  for jar in "$KV_ROOT"/java/kvasir-cli/target/lib/*.jar "$KV_ROOT"/java/kvasir-bench/target/lib/*.jar; do
    case "$(basename "$jar")" in
      *-linux-arm64.jar|*-linux-ppc64le.jar|*-macosx-*.jar|*-windows-*.jar|*-android-*.jar|*-ios-*.jar) continue ;;
      # Charts are rendered here from the committed records (kvasir-bench report), never on the
      # device: JFreeChart stays behind (1.7 MB of the 63 MiB transfer).
      jfreechart-*.jar|org.jfree.svg-*.jar) continue ;;
    esac
    cp "$jar" "$stage/lib/"
  done
  # The kvasir-native jar carries libkvasir.so as well: put the stripped copy of bin/ in it and
  # store it uncompressed, so that xz finds the two copies identical and keeps one (-9 has a
  # 64 MiB window).
  local native_jar stripped
  native_jar=$(ls "$stage"/lib/kvasir-native-*.jar)
  stripped=$(mktemp -d)
  mkdir -p "$stripped/io/kvasir/nativeapi/linux-x86_64"
  cp "$stage/bin/libkvasir.so" "$stripped/io/kvasir/nativeapi/linux-x86_64/libkvasir.so"
  (cd "$stripped" && zip -q -0 "$native_jar" io/kvasir/nativeapi/linux-x86_64/libkvasir.so)
  rm -rf "$stripped"
  # DJL's tokenizers jar carries its native library for every platform; keep linux-x86_64.
  for jar in "$stage"/lib/tokenizers-*.jar; do
    [[ -f $jar ]] && zip -q -d "$jar" 'native/lib/osx-*' 'native/lib/win-*' 'native/lib/linux-aarch64/*' >/dev/null 2>&1 || true
  done
  local jdk="${KV_JLINK_JDK:-/usr/lib/jvm/java-17-openjdk-amd64}"
  kv_step jlink "$jdk/bin/jlink" --add-modules "$JLINK_MODULES" --strip-debug --no-header-files \
    --no-man-pages --compress=0 --output "$stage/jre"
  find "$stage/jre" -name '*.so' -exec strip --strip-unneeded {} + 2>/dev/null || true
}

# The reference model's prose (tools/refmodel/corpus.sh builds it from Debian packages).
pack_corpus() {
  local stage=$1
  kv_step corpus "$KV_ROOT/tools/refmodel/corpus.sh" "$KV_ROOT/build/refmodel/corpus"
  mkdir -p "$stage/corpus"
  cp "$KV_ROOT/build/refmodel/corpus/train.txt" "$KV_ROOT/build/refmodel/corpus/heldout.txt" "$stage/corpus/"
}

check_size() {
  local tree bundle total
  tree=$(cd "$KV_ROOT" && git ls-files -co --exclude-standard -z | xargs -0 -r stat -c %s -- 2>/dev/null | awk '{s+=$1} END {print s+0}')
  bundle=$(stat -c %s "$BUNDLE")
  total=$((tree + bundle))
  kv_say "transfer: tree $((tree / 1024)) KiB + bundle $((bundle / 1024)) KiB = $((total / 1024 / 1024)) MiB (limit 63 MiB)"
  if ((total > LIMIT_BYTES)); then
    kv_say "the transfer exceeds 63 MiB: shrink the bundle (jars, jlink modules) or the tracked tree"
    rm -f "$BUNDLE"
    exit 1
  fi
}

remote() {
  local out="${OUT:-/tmp/kvasir-out}" root=/tmp/kvasir-gpu
  mkdir -p "$out"
  [[ -f "$BUNDLE" ]] || { echo "no $BUNDLE: run ci/gpu.sh pack here and carry .gpu" >&2; exit 2; }
  rm -rf "$root" && mkdir -p "$root"
  tar -xJf "$BUNDLE" -C "$root"
  export KVASIR_GIT_COMMIT
  KVASIR_GIT_COMMIT="$(tr '\n' ' ' < "$root/COMMIT" | sed 's/ $//')"
  export KVASIR_DEVICE_LINE
  KVASIR_DEVICE_LINE="$(nvidia-smi --query-gpu=name,driver_version,memory.total,pci.bus_id --format=csv,noheader 2>/dev/null | head -n 1)"
  export KVASIR_DATE
  KVASIR_DATE="$(date -u +%Y-%m-%d)"
  export LD_LIBRARY_PATH="/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
  local stamp="commit $KVASIR_GIT_COMMIT | device $KVASIR_DEVICE_LINE | date $KVASIR_DATE"
  local steps=("$@")
  ((${#steps[@]})) || steps=(gtest java bench)
  local summary="$out/summary.md" rc_all=0
  printf '# GPU run\n\n%s\n\n| step | exit | seconds |\n|---|---:|---:|\n' "$stamp" > "$summary"
  for step in "${steps[@]}"; do
    local log="$out/$step.log" start=$SECONDS rc=0
    echo "# $stamp" > "$log"
    case "$step" in
      gtest)
        "$root/bin/kvasir_tests" --gtest_brief=1 >> "$log" 2>&1 || rc=$? ;;
      java)
        # The smoke test: kernels through JavaCPP on CUDA and CPU, devices through the presets,
        # then the reference model generating on CUDA, its Hugging Face tokenizer loaded offline.
        { "$root/jre/bin/java" -jar "$root/kvasir-cli.jar" info --roofline &&
          "$root/jre/bin/java" -jar "$root/kvasir-cli.jar" generate --model "$KV_ROOT/models/kvasir-ref" --device cuda \
            --prompt "Compute 348 + 275 - 17." --chat --max-tokens 128; } >> "$log" 2>&1 || rc=$? ;;
      bench)
        KVASIR_COMMAND="ci/gpu.sh remote bench ${KVASIR_BENCH_ARGS:-}" "$root/bin/kvasir_bench_ops" --backend cuda \
          --json "$out/$KVASIR_DATE-kernels.json" --md "$out/$KVASIR_DATE-kernels.md" ${KVASIR_BENCH_ARGS:-} >> "$log" 2>&1 || rc=$? ;;
      parity)
        parity "$root" "$out" >> "$log" 2>&1 || rc=$? ;;
      speed)
        speed "$root" "$out" >> "$log" 2>&1 || rc=$? ;;
      ncu)
        ncu_step "$root" "$out" >> "$log" 2>&1 || rc=$? ;;
      refmodel)
        refmodel "$root" "$out" >> "$log" 2>&1 || rc=$? ;;
      refeval)
        refeval "$root" "$out" >> "$log" 2>&1 || rc=$? ;;
      paged)
        paged "$root" "$out" >> "$log" 2>&1 || rc=$? ;;
      pagedstep)
        pagedstep "$root" "$out" >> "$log" 2>&1 || rc=$? ;;
      accept6)
        accept6 "$root" "$out" >> "$log" 2>&1 || rc=$? ;;
      serve)
        serve_step "$root" "$out" >> "$log" 2>&1 || rc=$? ;;
      bench6)
        bench6 "$root" "$out" >> "$log" 2>&1 || rc=$? ;;
      serveload)
        serveload "$root" "$out" >> "$log" 2>&1 || rc=$? ;;
      quant)
        quant_step "$root" "$out" >> "$log" 2>&1 || rc=$? ;;
      *)
        echo "unknown step $step" >> "$log"; rc=2 ;;
    esac
    printf '| %s | %d | %d |\n' "$step" "$rc" "$((SECONDS - start))" >> "$summary"
    echo "== $step: exit $rc ($((SECONDS - start)) s)"
    tail -n 25 "$log"
    ((rc == 0)) || rc_all=1
  done
  cat "$summary"
  exit "$rc_all"
}

# Random transformers checkpoints, Kvasir on CPU and CUDA in fp32 and bf16, compared.
parity() {
  local root=$1 out=$2 work=/tmp/kvasir-parity
  rm -rf "$work" && mkdir -p "$work/out"
  # The shipped reference model is a parity case of its own when present.
  [[ -f $KV_ROOT/models/kvasir-ref/model.safetensors ]] &&
    export KVASIR_PARITY_EXTRA="kvasir-ref=$KV_ROOT/models/kvasir-ref${KVASIR_PARITY_EXTRA:+;$KVASIR_PARITY_EXTRA}"
  python3 "$KV_ROOT/tools/peers/hf_parity.py" make "$work" || return 1
  while read -r name ids; do
    for device in cpu cuda; do
      for dtype in f32 bf16; do
        "$root/jre/bin/java" -jar "$root/kvasir-cli.jar" generate --model "$work/$name" --prompt-ids "$ids" \
          --max-tokens 64 --ignore-eos --greedy-ids --device "$device" --dtype "$dtype" \
          --logits-out "$work/out/$name-$device-$dtype.npy" > "$work/out/$name-$device-$dtype.txt" ||
          echo "kvasir failed on $name $device $dtype"
      done
    done
  done < "$work/prompts.txt"
  python3 "$KV_ROOT/tools/peers/hf_parity.py" compare "$work"
  local rc=$?
  cp "$work/parity.md" "$out/$KVASIR_DATE-parity.md" 2>/dev/null
  cp "$work/parity.json" "$out/$KVASIR_DATE-parity.json" 2>/dev/null
  return $rc
}

# The paged KV kernels (issue 5): their CUDA gtests against the CPU reference, then decode,
# prefill and Quest against the roofline, the dense kernels and torch SDPA on the same shapes.
# Each part has a time cap so that one slow part cannot eat the session's device time.
paged() {
  local root=$1 out=$2 rc=0
  timeout 150 "$root/bin/kvasir_tests" --gtest_brief=1 \
    --gtest_filter='*Paged*cuda*:PagedQuest/*cuda*:*attention_prefill*cuda*:*attention_decode*cuda*' || rc=1
  timeout 110 "$root/bin/kvasir_bench_paged_decode" --backend cuda --reps 20 \
    --json "$out/$KVASIR_DATE-paged-decode.json" | grep -v '^{' || rc=1
  # The tensor-core kernel (auto) against the CUDA-core one and against P rounded to bf16 once.
  timeout 90 "$root/bin/kvasir_bench_paged_decode" --backend cuda --reps 20 --kernel cuda-core --kernel tensor-core \
    --kernel tensor-core-bf16p --batch 1 --batch 8 --batch 32 --ctx 8192 --ctx 32768 \
    --json "$out/$KVASIR_DATE-paged-decode-kernels.json" | grep -v '^{' || rc=1
  # Quest at K = 64 pages against the full paged decode at 32K; then the decode with a GQA group
  # of 1 (Hq = Hkv = 8), which reads the same bytes with a quarter of the arithmetic: the profile
  # that tells a compute-bound kernel from a memory-bound one.
  { timeout 60 "$root/bin/kvasir_bench_paged_decode" --backend cuda --reps 20 --ctx 32768 --batch 1 --batch 8 \
      --batch 32 --quest-k 64
    timeout 40 "$root/bin/kvasir_bench_paged_decode" --backend cuda --reps 20 --hq 8 --ctx 32768 --ctx 131072 \
      --batch 1 --batch 32 --kernel cuda-core --kernel tensor-core; } | grep '^{' > "$out/$KVASIR_DATE-paged-decode-quest-group1.json" || rc=1
  timeout 60 python3 "$KV_ROOT/tools/peers/sdpa_decode_bench.py" --reps 20 \
    --json "$out/$KVASIR_DATE-sdpa-decode.json" > /dev/null || rc=1
  timeout 30 "$root/bin/kvasir_bench_paged_prefill" --backend cuda --seq 8192,32768 \
    --json "$out/$KVASIR_DATE-paged-prefill.json" || rc=1
  timeout 30 python3 "$KV_ROOT/tools/peers/sdpa_prefill_bench.py" --seq 8192,32768 \
    --json "$out/$KVASIR_DATE-sdpa-prefill.json" || rc=1
  timeout 40 "$root/bin/kvasir_bench_paged_quest" --backend cuda \
    --json "$out/$KVASIR_DATE-paged-quest.json" || rc=1
  return $rc
}

# The CUDA paged model step (issue 5): gtests, the reference model's greedy ids on slot caches
# against the full policy (they must agree) and Quest, then llama3-8b decode slot against paged.
pagedstep() {
  local root=$1 out=$2 rc=0 cli=("$root/jre/bin/java" -jar "$root/kvasir-cli.jar" generate)
  timeout 150 "$root/bin/kvasir_tests" --gtest_brief=1 --gtest_filter='*ModelPaged*cuda*:*ModelTest*cuda*' || rc=1
  local ref=("${cli[@]}" --model "$KV_ROOT/models/kvasir-ref" --device cuda --prompt "Compute 348 + 275 - 17."
    --chat --max-tokens 128 --greedy-ids)
  "${ref[@]}" > /tmp/ref-slot.txt || rc=1
  "${ref[@]}" --policy full > /tmp/ref-full.txt || rc=1
  "${ref[@]}" --policy quest:k=4 --page-tokens 4 > /tmp/ref-quest.txt || rc=1
  for f in slot full quest; do echo "## kvasir-ref $f"; cat "/tmp/ref-$f.txt"; done
  if [[ "$(grep '^ids:' /tmp/ref-slot.txt)" == "$(grep '^ids:' /tmp/ref-full.txt)" ]]; then
    echo "kvasir-ref: slot and paged greedy ids agree"
  else
    echo "kvasir-ref: slot and paged greedy ids DIFFER"; rc=1
  fi
  local big=("${cli[@]}" --model synthetic:llama3-8b --device cuda --dtype bf16 --ignore-eos --prompt-tokens 1024
    --max-context 1200)
  for batch in 1 16 64; do
    echo "## llama3-8b decode batch $batch: slot caches, then --policy full"
    timeout 120 "${big[@]}" --max-tokens 128 --batch "$batch" | grep '^-- ' || rc=1
    timeout 120 "${big[@]}" --max-tokens 128 --batch "$batch" --policy full --no-prefix-cache | grep '^-- ' || rc=1
  done
  for policy in "" "--policy full --no-prefix-cache"; do
    echo "## llama3-8b decode batch 64 ${policy:-on slot caches}, profiled"
    # shellcheck disable=SC2086
    timeout 120 "${big[@]}" --batch 64 --max-tokens 32 $policy --profile | sed -n '/^-- /,$p' || rc=1
  done
  return $rc
}

# End-to-end serving benchmarks of synthetic llama3-8b (issue 5). Each part has a time cap so
# that one slow part cannot eat the call; a part that fails or times out fails the step, the
# others still run. Sizes shrink through the KVASIR_SERVE_* variables listed at the top.
serve_step() {
  local root=$1 out=$2 work=/tmp/kvasir-serve rc=0
  rm -rf "$work" && mkdir -p "$work"
  local n=${KVASIR_SERVE_REQUESTS:-512} sub=${KVASIR_SERVE_SUBSAMPLE:-64}
  local parts=" ${KVASIR_SERVE_PARTS:-offline subsample hf online prefix} "
  local bench=("$root/jre/bin/java" -jar "$root/kvasir-bench.jar" serve --model "${KVASIR_SERVE_MODEL:-synthetic:llama3-8b}"
    --device "${KVASIR_SERVE_DEVICE:-cuda}" --dtype bf16 --policy "${KVASIR_SERVE_POLICY:-full}" --max-batch "${KVASIR_SERVE_MAX_BATCH:-256}"
    --max-step-tokens "${KVASIR_SERVE_STEP_TOKENS:-8192}" --kv-budget "${KVASIR_SERVE_KV_BUDGET:-90GiB}"
    --seed "${KVASIR_SERVE_SEED:-0}" --output-tokens "${KVASIR_SERVE_OUTPUT_TOKENS:-256}" --warmup 4)
  local lengths=(--prompt-min "${KVASIR_SERVE_PROMPT_MIN:-1024}" --prompt-max "${KVASIR_SERVE_PROMPT_MAX:-8192}")
  local offline="$out/$KVASIR_DATE-serve-offline.json"
  if [[ $parts == *" offline "* ]]; then
    echo "## offline: $n requests"
    timeout 270 "${bench[@]}" "${lengths[@]}" --requests "$n" --roofline --record "$offline" || rc=1
  fi
  if [[ $parts == *" subsample "* || $parts == *" hf "* ]]; then
    echo "## offline: the first $sub of the $n requests (exported for transformers)"
    timeout 90 "${bench[@]}" "${lengths[@]}" --requests "$n" --subsample "$sub" --roofline \
      --export-workload "$work/subsample-workload.json" --record "$out/$KVASIR_DATE-serve-subsample.json" || rc=1
  fi
  if [[ $parts == *" hf "* && ${KVASIR_SERVE_HF:-1} != 0 ]]; then
    echo "## transformers generate on the same $sub requests"
    timeout 180 python3 "$KV_ROOT/tools/peers/hf_generate_bench.py" "$work/subsample-workload.json" \
      --out "$out/$KVASIR_DATE-serve-subsample-hf.json" || rc=1
  fi
  if [[ $parts == *" online "* ]]; then
    local rates=${KVASIR_SERVE_RATES:-}
    if [[ -z $rates ]]; then
      # 50% and 90% of the offline request rate.
      rates=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]["request_throughput_per_s"]
print("%.3f %.3f" % (0.5 * r, 0.9 * r))' "$offline") || { echo "no offline record: set KVASIR_SERVE_RATES"; rc=1; }
    fi
    local rate
    for rate in $rates; do
      # About KVASIR_SERVE_ONLINE_SECONDS of arrivals, at most the offline count.
      local count
      count=$(python3 -c 'import math,sys; print(max(1, min(int(sys.argv[3]), math.ceil(float(sys.argv[1]) * float(sys.argv[2])))))' \
        "$rate" "${KVASIR_SERVE_ONLINE_SECONDS:-40}" "$n")
      echo "## online: $count requests at $rate requests/s"
      timeout 150 "${bench[@]}" "${lengths[@]}" --requests "$count" --rate "$rate" --roofline \
        --record "$out/$KVASIR_DATE-serve-online-r$rate.json" || rc=1
    done
  fi
  if [[ $parts == *" prefix "* ]]; then
    local prefix=(--shared-prefix "${KVASIR_SERVE_PREFIX_TOKENS:-4096}" --prompt-min 128 --prompt-max 512
      --requests "${KVASIR_SERVE_PREFIX_REQUESTS:-64}" --rate "${KVASIR_SERVE_PREFIX_RATE:-2}")
    echo "## shared prefix, prefix cache on"
    timeout 120 "${bench[@]}" "${prefix[@]}" --record "$out/$KVASIR_DATE-serve-prefix-cache.json" || rc=1
    echo "## shared prefix, prefix cache off"
    timeout 120 "${bench[@]}" "${prefix[@]}" --no-prefix-cache \
      --record "$out/$KVASIR_DATE-serve-prefix-nocache.json" || rc=1
  fi
  return $rc
}

# Cache policies side by side (issue 6): one kvasir-bench run, every policy on the same
# workloads, one engine per policy. A run cut short by the cap keeps the records it wrote and
# summary.json (rewritten after each record). Sizes come from the KVASIR_BENCH6_* variables above.
bench6() {
  local root=$1 out=$2 dir="$2/bench6"
  mkdir -p "$dir"
  local rates=${KVASIR_BENCH6_RATES:-3 6} pp=${KVASIR_BENCH6_PP:-512 2048 8192}
  local tg=${KVASIR_BENCH6_TG:-1024 4096 16384} tg_batch=${KVASIR_BENCH6_TG_BATCH:-1 16}
  local args=(run --model "${KVASIR_BENCH6_MODEL:-synthetic:llama3-8b}" --device "${KVASIR_BENCH6_DEVICE:-cuda}"
    --dtype bf16 --policies "${KVASIR_BENCH6_POLICIES:-full;quest:k=64}"
    --workload "${KVASIR_BENCH6_WORKLOADS:-offline,online,pp-tg}" --requests "${KVASIR_BENCH6_REQUESTS:-128}"
    --prompt-len "${KVASIR_BENCH6_PROMPT_LEN:-1024:4096}" --output-len "${KVASIR_BENCH6_OUTPUT_LEN:-128}"
    --rates "${rates// /,}" --pp "${pp// /,}" --tg "${tg// /,}" --tg-batch "${tg_batch// /,}"
    --tg-tokens "${KVASIR_BENCH6_TG_TOKENS:-64}" --slo "${KVASIR_BENCH6_SLO:-ttft_ms=2000,tpot_ms=100}"
    --max-batch "${KVASIR_BENCH6_MAX_BATCH:-256}" --max-step-tokens "${KVASIR_BENCH6_STEP_TOKENS:-8192}"
    --kv-budget "${KVASIR_BENCH6_KV_BUDGET:-90GiB}" --seed "${KVASIR_BENCH6_SEED:-0}" --warmup 4 --roofline
    --progress-seconds 10 --out "$dir")
  [[ -n ${KVASIR_BENCH6_MAX_CONCURRENCY:-} ]] && args+=(--max-concurrency "$KVASIR_BENCH6_MAX_CONCURRENCY")
  # shellcheck disable=SC2206
  [[ -n ${KVASIR_BENCH6_EXTRA:-} ]] && args+=($KVASIR_BENCH6_EXTRA)
  echo "## kvasir-bench ${args[*]}"
  local rc=0
  timeout "${KVASIR_BENCH6_TIMEOUT:-510}" "$root/jre/bin/java" -jar "$root/kvasir-bench.jar" "${args[@]}" || rc=$?
  ((rc == 124)) && echo "bench6: cut at ${KVASIR_BENCH6_TIMEOUT:-510} s; summary.json lists what finished"
  [[ -f $dir/summary.json ]] && cat "$dir/summary.json"
  return $rc
}

# Issue 6's acceptance set in one call: bench6 (full against quest:k=64 on llama3-8b: offline,
# online at two rates, the pp/tg matrix), transformers generate on the same offline prompts
# (serve's workload rule is run's offline rule), the reference model's long-context suite under
# both policies with transformers on the same records, and fidelity against full KV. Everything
# lands in one tar (the $OUT file-count limit). Sizes and caps keep it under ~8 minutes.
accept6() {
  local root=$1 out=$2 rc=0 dir="$2/bench6" work=/tmp/kvasir-accept6
  rm -rf "$work" && mkdir -p "$work" "$dir"
  local B=("$root/jre/bin/java" -Xmx32g -jar "$root/kvasir-bench.jar") n=${KVASIR_ACCEPT6_REQUESTS:-64}
  # KVASIR_ACCEPT6_PARTS picks parts: bench (bench6), hf (transformers on the offline prompts),
  # eval (the reference model's suite), hfeval (transformers on its records; needs eval), fidelity.
  local parts=" ${KVASIR_ACCEPT6_PARTS:-bench hf eval fidelity} "
  [[ ${KVASIR_ACCEPT6_HF_EVAL:-0} == 1 ]] && parts+="hfeval "
  if [[ $parts == *" bench "* ]]; then
    KVASIR_BENCH6_REQUESTS=$n KVASIR_BENCH6_TIMEOUT=${KVASIR_ACCEPT6_BENCH_TIMEOUT:-230} bench6 "$root" "$out" || rc=1
  fi
  if [[ $parts == *" hf "* ]]; then
    echo "## transformers on the offline prompts"
    timeout 60 "${B[@]}" serve --model synthetic:llama3-8b --device cuda --dtype bf16 --policy full --requests "$n" \
      --prompt-min 1024 --prompt-max 4096 --output-tokens 128 --seed 0 --max-batch 256 --max-step-tokens 8192 \
      --kv-budget 90GiB --export-workload "$work/offline-workload.json" \
      --record "$dir/$KVASIR_DATE-offline-serve-export.json" | tail -n 12 || rc=1
    timeout 110 python3 "$KV_ROOT/tools/peers/hf_generate_bench.py" "$work/offline-workload.json" \
      --out "$dir/$KVASIR_DATE-offline-transformers.json" || rc=1
  fi
  local model="$KV_ROOT/models/kvasir-ref" policy slug
  local eval=(eval --model "$model" --device cuda --seed 1 --count "${KVASIR_ACCEPT6_EVAL_COUNT:-40}" --batch 16
    --max-context 8192 --haystack "$model/heldout-prose.txt" --task passkey,niah_multikey,cwe --length 4096,8192)
  local policies=(full "quest:k=16")
  [[ $parts == *" eval "* ]] || policies=()
  for policy in "${policies[@]}"; do
    slug=${policy//[:=]/-}
    echo "## reference model, long-context suite, $policy"
    local extra=()
    [[ $policy == full ]] && extra=(--export-records "$work/records.jsonl")
    timeout 60 "${B[@]}" "${eval[@]}" --policy "$policy" --out "$dir/$KVASIR_DATE-refeval-$slug.json" "${extra[@]}" \
      | tail -n 12 || rc=1
  done
  if [[ $parts == *" hfeval "* ]]; then
    echo "## transformers on the same records"
    timeout 100 python3 "$KV_ROOT/tools/peers/hf_eval_tasks.py" "$work/records.jsonl" --model "$model" --batch 16 \
      --out "$dir/$KVASIR_DATE-refeval-transformers.json" | tail -n 12 || rc=1
  fi
  if [[ $parts == *" fidelity "* ]]; then
    echo "## fidelity against full KV, reference model"
    timeout 50 "${B[@]}" fidelity --model "$model" --device cuda --task passkey,niah_multikey --length 4096 \
      --count 16 --seed 1 --tokens 64 --haystack "$model/heldout-prose.txt" --policies "full;quest:k=16;quest:k=4" \
      --out "$dir/$KVASIR_DATE-fidelity-refmodel.json" | tail -n 12 || rc=1
  fi
  tar -C "$out" -cf "$out/accept6.tar" bench6 && rm -rf "$dir"
  return $rc
}

# Trains the reference model; everything it writes comes back as one tar (the $OUT file limits).
refmodel() {
  local root=$1 out=$2 work=/tmp/kvasir-refmodel
  [[ -f $root/corpus/train.txt ]] || { echo "no corpus in the bundle: pack with 'ci/gpu.sh pack --with-corpus'"; return 2; }
  rm -rf "$work" && mkdir -p "$work"
  PYTHONUNBUFFERED=1 python3 "$KV_ROOT/tools/refmodel/train.py" --corpus "$root/corpus" \
    --bench "$root/jre/bin/java -Xmx8g -jar $root/kvasir-bench.jar" --out "$work/kvasir-ref" \
    ${KVASIR_REFMODEL_ARGS:-}
  local rc=$?
  tar -C "$work" -cf "$out/refmodel.tar" kvasir-ref
  return $rc
}

# The acceptance grid of the reference model (the same command runs on the CPU here).
refeval() {
  local root=$1 out=$2 model="$KV_ROOT/models/kvasir-ref"
  "$root/jre/bin/java" -jar "$root/kvasir-bench.jar" eval --model "$model" --device cuda --seed 1 \
    --count "${KVASIR_REFEVAL_COUNT:-100}" --batch 16 --max-context 8192 --haystack "$model/heldout-prose.txt" \
    --task passkey,niah_single,niah_multikey --length 2048,4096,8192 --out "$out/$KVASIR_DATE-refeval-cuda.json" &&
  "$root/jre/bin/java" -jar "$root/kvasir-bench.jar" eval --model "$model" --device cuda --seed 1 \
    --count "${KVASIR_REFEVAL_COUNT:-100}" --batch 16 --haystack "$model/heldout-prose.txt" \
    --task arithmetic,docqa --length 2048 --out "$out/$KVASIR_DATE-refeval-cuda-short.json"
}

# synthetic:llama3-8b decode (batch 1 and 16) and 8K prefill, then transformers on the same shapes.
# The profile runs time every stage with events (graphs off) and land in profile.txt; the A/B
# runs show what the CUDA graphs and the GEMV kernel are worth.
speed() {
  local root=$1 out=$2 cli=("$root/jre/bin/java" -jar "$root/kvasir-cli.jar" generate --model synthetic:llama3-8b
    --device cuda --dtype bf16 --ignore-eos)
  for batch in 1 16; do
    "${cli[@]}" --prompt-tokens 1024 --max-tokens 128 --batch "$batch" --roofline \
      --record "$out/$KVASIR_DATE-decode-llama3-8b-b$batch.json" | tail -n 3 || return 1
  done
  "${cli[@]}" --prompt-tokens 8192 --max-tokens 1 --max-context 8200 | tail -n 1 || return 1
  {
    for batch in 1 16; do
      echo "## decode batch $batch, prompt 1024, 32 new tokens"
      "${cli[@]}" --prompt-tokens 1024 --max-tokens 32 --batch "$batch" --profile | sed -n '/^-- /,$p'
    done
    echo "## prefill 8192"
    "${cli[@]}" --prompt-tokens 8192 --max-tokens 1 --max-context 8200 --profile | sed -n '/^-- /,$p'
    for args in "--batch 1 --no-cuda-graphs" "--batch 1 --no-pdl" "--batch 1 --gemv-max-rows 0" \
      "--batch 16 --gemv-max-rows 16" "--batch 16 --gemv-max-rows 0"; do
      echo "## A/B: $args"
      # shellcheck disable=SC2086
      "${cli[@]}" --prompt-tokens 1024 --max-tokens 64 $args | grep '^-- '
    done
  } > "$out/profile.txt" 2>&1 || return 1
  cat "$out/profile.txt"
  # KVASIR_SPEED_HF=0 skips transformers (when this session already measured it).
  [[ "${KVASIR_SPEED_HF:-1}" == 0 ]] || python3 "$KV_ROOT/tools/peers/hf_speed.py" "$out/$KVASIR_DATE-hf-speed.json"
}

# Per-kernel times and DRAM throughput, clocks left alone (device METHOD.md). Decode: kernels of
# the second and later decode steps (the filter skips the prefill's); prefill: one 2048-token chunk.
ncu_step() {
  local root=$1 out=$2 cli=("$root/jre/bin/java" -jar "$root/kvasir-cli.jar" generate --model synthetic:llama3-8b
    --device cuda --dtype bf16 --ignore-eos)
  local ncu_bin metrics=gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed
  ncu_bin=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -n 1)
  [[ -n "$ncu_bin" ]] || { echo "no ncu"; return 1; }
  local common=("$ncu_bin" --clock-control none --target-processes all --csv --metrics "$metrics")
  local filter='regex:gemv|attention|combine_splits|rms_norm|qkv_post|silu|sample_kernel|gemm|Gemm|Kernel|sm90|cutlass'
  # Skips reach the decode steps: the prefill launches ~230 matching kernels per 2048-token step.
  for run in "1 400" "16 2000"; do
    read -r batch skip <<< "$run"
    "${common[@]}" -k "$filter" --launch-skip "$skip" --launch-count 120 "${cli[@]}" --prompt-tokens 1024 \
      --max-tokens 4 --batch "$batch" --no-cuda-graphs > "$out/ncu-decode-b$batch.csv" 2> "$out/ncu.err" || return 1
  done
  "${common[@]}" -k "$filter" --launch-skip 0 --launch-count 60 "${cli[@]}" --prompt-tokens 2048 --max-tokens 1 \
    > "$out/ncu-prefill.csv" 2>> "$out/ncu.err" || return 1
}

# kvasir serve under load (issue 7): the server on loopback, ServeLoad's clients near saturation
# for a bounded time, memory of both sides at start and end. The server is stopped with SIGTERM
# (its drain is part of the log) and killed if it outlives its shutdown timeout.
serveload() {
  local root=$1 out=$2 rc=0 port=18080 pid
  local model=${KVASIR_SERVELOAD_MODEL:-synthetic:llama3-8b} secs=${KVASIR_SERVELOAD_SECONDS:-120}
  local java=("$root/jre/bin/java")
  "${java[@]}" -jar "$root/kvasir-cli.jar" serve --model "$model" --device "${KVASIR_SERVELOAD_DEVICE:-cuda}" \
    --dtype bf16 --policy "${KVASIR_SERVELOAD_POLICY:-full}" --max-batch "${KVASIR_SERVELOAD_MAX_BATCH:-256}" \
    --max-context $(( ${KVASIR_SERVELOAD_PROMPT_TOKENS:-1024} + ${KVASIR_SERVELOAD_MAX_TOKENS:-256} + 16 )) \
    --kv-budget "${KVASIR_SERVELOAD_KV_BUDGET:-90GiB}" --max-waiting 4096 --port "$port" --shutdown-timeout 20 -v &
  pid=$!
  local up=0
  for _ in $(seq 1 180); do
    curl -sf "http://127.0.0.1:$port/health" > /dev/null && { up=1; break; }
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  if ((up == 0)); then
    echo "the server did not come up"; kill -9 "$pid" 2>/dev/null; return 1
  fi
  mem() {
    echo "host_rss_kib $(awk '/VmRSS/ {print $2}' "/proc/$pid/status")"
    echo "device_used_mib $(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | head -n 1)"
  }
  # A warm-up load first (JIT, cuBLAS plans, CUDA graphs, malloc arenas), so that start and end
  # memory compare steady states: growth between them is what a leak would show.
  timeout $((${KVASIR_SERVELOAD_WARMUP_SECONDS:-20} + 120)) "${java[@]}" -cp "$root/kvasir-cli.jar:$root/lib/*" \
    io.kvasir.server.ServeLoad "http://127.0.0.1:$port" "$model" "${KVASIR_SERVELOAD_CLIENTS:-256}" \
    "${KVASIR_SERVELOAD_WARMUP_SECONDS:-20}" "${KVASIR_SERVELOAD_PROMPT_TOKENS:-1024}" \
    "${KVASIR_SERVELOAD_MAX_TOKENS:-256}" "${KVASIR_SERVELOAD_VOCAB:-128256}" > /dev/null || rc=1
  mem | tee "$out/serveload-memory-start.txt"
  curl -s "http://127.0.0.1:$port/metrics" > "$out/serveload-metrics-start.txt"
  timeout $((secs + 150)) "${java[@]}" -cp "$root/kvasir-cli.jar:$root/lib/*" io.kvasir.server.ServeLoad \
    "http://127.0.0.1:$port" "$model" "${KVASIR_SERVELOAD_CLIENTS:-256}" "$secs" \
    "${KVASIR_SERVELOAD_PROMPT_TOKENS:-1024}" "${KVASIR_SERVELOAD_MAX_TOKENS:-256}" "${KVASIR_SERVELOAD_VOCAB:-128256}" \
    "$out/$KVASIR_DATE-serveload.json" || rc=1
  mem | tee "$out/serveload-memory-end.txt"
  # Device memory must not grow at all (the KV pool and workspaces are sized at start); host RSS
  # within KVASIR_SERVELOAD_RSS_SLACK_MIB (default 256: heap and arena noise, not a leak).
  paste "$out/serveload-memory-start.txt" "$out/serveload-memory-end.txt" | awk -v slack="${KVASIR_SERVELOAD_RSS_SLACK_MIB:-256}" '
    $1 == "host_rss_kib" { d = ($4 - $2) / 1024; printf "host RSS growth %.1f MiB\n", d; if (d > slack) bad = 1 }
    $1 == "device_used_mib" { d = $4 - $2; printf "device memory growth %d MiB\n", d; if (d > 0) bad = 1 }
    END { exit bad }' || { echo "memory grew between the start and the end of the load"; rc=1; }
  curl -s "http://127.0.0.1:$port/metrics" > "$out/serveload-metrics-end.txt"
  grep -E '^kvasir:(num_|kv_cache_usage|prefix|generation|prompt|request_)' "$out/serveload-metrics-end.txt"
  kill -TERM "$pid"
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  kill -0 "$pid" 2>/dev/null && { echo "the server outlived its shutdown"; kill -9 "$pid"; rc=1; }
  wait "$pid" 2>/dev/null
  return $rc
}

# The quantized KV kernels: CUDA gtests, then the decode benchmark (each part time-capped).
quant_step() {
  local root=$1 out=$2 rc=0
  timeout 200 "$root/bin/kvasir_tests" --gtest_brief=1 \
    --gtest_filter="${KVASIR_QUANT_GTEST_FILTER:-*Quant*cuda*:*PagedDecode*32768*cuda*}" || rc=1
  # shellcheck disable=SC2086
  timeout 240 "$root/bin/kvasir_bench_quant_decode" --backend cuda --reps 20 --max-seconds 0.5 \
    ${KVASIR_QUANT_BENCH_ARGS:-} --json "$out/$KVASIR_DATE-quant-decode.json" | grep -v '^{' || rc=1
  return $rc
}

case "${1:-}" in
  pack) shift; pack "$@" ;;
  remote) shift; remote "$@" ;;
  *) echo "usage: ci/gpu.sh pack | remote [gtest java bench]" >&2; exit 2 ;;
esac

