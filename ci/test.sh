#!/usr/bin/env bash
# The README's test command and CI's entry (.ci/run): installs what is missing, builds the
# native library and Java modules from scratch, runs the gtest suites (ctest) and the JUnit
# suites (mvn verify), prints the counts, and exits non-zero on any failure.
source "$(dirname "$0")/lib.sh"
cd "$KV_ROOT"
kv_build_lock
rm -rf "$KV_BUILD_DIR" "$KV_LOG_DIR"
start=$SECONDS

kv_step install-packages kv_install_packages
kv_step build-native kv_build_native
kv_step native-tests kv_native_tests
kv_step fetch-tokenizers kv_fetch_tokenizers
kv_step openai-compat kv_install_compat
# The transformers task peer's port of TaskScorer on the cases the Java scorer runs too (no torch needed).
kv_step peer-scorer python3 tools/peers/hf_eval_tasks.py --self-test
kv_step java-verify kv_maven clean verify

# Counts, read from the logs, so CI output shows what ran.
grep -E 'tests passed|tests failed' "$KV_LOG_DIR/native-tests.log" | sed 's/^/[kvasir] ctest: /' >&2 || true
skipped=$(grep -c '(Skipped)' "$KV_LOG_DIR/native-tests.log" || true)
kv_say "ctest: $skipped tests skipped (CUDA cases without a device)"
grep -E '^\[(INFO|WARNING)\] Tests run:' "$KV_LOG_DIR/java-verify.log" | grep -v ' -- in ' | sed 's/^/[kvasir] maven: /' >&2 || true
kv_say "all tests passed in $((SECONDS - start)) s"
