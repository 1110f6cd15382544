#!/usr/bin/env bash
# Fuzz the firmware's C code with libFuzzer (+ASan +UBSan):
#   TARGET=model (default): the runtime's flatbuffer reader / model loader (fuzz/fuzz_model.c);
#   TARGET=frame: the protocol engine, frame receiver to replies (fuzz/fuzz_frame.c).
#   [TARGET=model|frame] tools/fuzz_fwrt.sh [RUNS] [extra libFuzzer flags...]   (default RUNS=1000000)
# Builds out of tree (a temp dir), starts from firmware_models/fuzz/corpus_model (copied: the repo's
# seed corpus is never modified) and prints executions, time and the result. Exit status != 0 on any
# crash or sanitizer report; the crashing input is kept in the printed artifact directory.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-1000000}
TARGET=${TARGET:-model}
case "$TARGET" in model|frame) ;; *) echo "fuzz_fwrt: TARGET must be model or frame, not '$TARGET'" >&2; exit 2;; esac
shift || true
command -v clang >/dev/null || { echo "fuzz_fwrt: clang not found: apt-get install clang libclang-rt-14-dev" >&2; exit 2; }
ls "$(clang -print-resource-dir)"/lib/linux/libclang_rt.fuzzer-*.a >/dev/null 2>&1 || {
  echo "fuzz_fwrt: clang's libFuzzer runtime is missing: apt-get install libclang-rt-$(clang -dumpversion | cut -d. -f1)-dev" >&2
  exit 2; }
WORK=$(mktemp -d /tmp/fuzz_fwrt.XXXXXX)
trap 'rm -rf "$WORK/corpus" "$WORK/build"' EXIT
make -s -C firmware_models/host BUILD="$WORK/build" "$WORK/build/fuzz_$TARGET"
mkdir -p "$WORK/corpus" "$WORK/artifacts"
cp firmware_models/fuzz/corpus_$TARGET/* "$WORK/corpus/"
start=$(date +%s.%N)
set +e
"$WORK/build/fuzz_$TARGET" -runs="$RUNS" -max_len=16384 -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 \
    -artifact_prefix="$WORK/artifacts/" "$@" "$WORK/corpus" > "$WORK/log.txt" 2>&1
rc=$?
set -e
end=$(date +%s.%N)
execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$WORK/log.txt" | grep -o '[0-9]*$' || echo "?")
secs=$(awk "BEGIN {printf \"%.1f\", $end - $start}")
if [ $rc -eq 0 ] && ! grep -q 'ERROR: \|runtime error:' "$WORK/log.txt"; then
  echo "fuzz_fwrt: $TARGET OK: $execs executions in $secs s, no crash, no sanitizer report"
  rm -rf "$WORK"
else
  tail -n 40 "$WORK/log.txt" >&2
  echo "fuzz_fwrt: $TARGET FAILED (exit $rc) after $execs executions in $secs s; log and crash input in $WORK" >&2
  exit 1
fi
