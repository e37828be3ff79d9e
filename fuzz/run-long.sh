#!/usr/bin/env bash
# Long fuzzing run of every target in fuzz/ (10 minutes each by default): run by
# hand or from a scheduled job, not on every commit (.ci/run only checks that the
# targets build). See fuzz/README.md.
#
#   fuzz/run-long.sh [--seconds N] [--merge] [TARGET...]
#
#   --seconds N  fuzzing time per target (default 600)
#   --merge      afterwards, add the inputs that reach new coverage to the
#                committed corpus fuzz/corpus-seed/TARGET (libFuzzer -merge=1,
#                which keeps it minimal); review and commit them
#   TARGET       parse_message, framer, uri, mspres (default: all)
#
# Needs a nightly toolchain (`rustup toolchain install nightly`) and a C++
# compiler (libfuzzer-sys builds libFuzzer). Uses `cargo fuzz` when installed,
# else builds with the same flags cargo-fuzz passes. Exits non-zero when a target
# crashes; the input is in fuzz/artifacts/TARGET/.
set -Eeuo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT/fuzz"

SECONDS_PER_TARGET=600
MERGE=0
TARGETS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_PER_TARGET="$2"; shift 2 ;;
    --merge) MERGE=1; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) TARGETS+=("$1"); shift ;;
  esac
done
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(parse_message framer uri mspres)

rustup run nightly rustc --version >/dev/null 2>&1 \
  || { echo "a nightly toolchain is needed: rustup toolchain install nightly" >&2; exit 2; }
TRIPLE="$(rustup run nightly rustc -vV | sed -n 's/^host: //p')"

if cargo +nightly fuzz --version >/dev/null 2>&1; then
  build() { cargo +nightly fuzz build -O "$1"; }
  BIN_DIR="target/$TRIPLE/release"
else
  # The flags cargo-fuzz sets (coverage instrumentation for libFuzzer).
  export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
  build() { cargo +nightly build --release --target "$TRIPLE" --bin "$1"; }
  BIN_DIR="target/$TRIPLE/release"
fi

status=0
for t in "${TARGETS[@]}"; do
  [ -d "corpus-seed/$t" ] || { echo "unknown target $t (no corpus-seed/$t)" >&2; exit 2; }
  echo "=== $t: build"
  build "$t"
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "=== $t: fuzzing for ${SECONDS_PER_TARGET}s (working corpus fuzz/corpus/$t, seeds fuzz/corpus-seed/$t)"
  if ! "$BIN_DIR/$t" "corpus/$t" "corpus-seed/$t" \
      -max_total_time="$SECONDS_PER_TARGET" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="artifacts/$t/" -print_final_stats=1; then
    echo "=== $t: FAILED (crash, leak or timeout): see fuzz/artifacts/$t/" >&2
    status=1
    continue
  fi
  if [ "$MERGE" = 1 ]; then
    echo "=== $t: merging new coverage into fuzz/corpus-seed/$t"
    "$BIN_DIR/$t" -merge=1 "corpus-seed/$t" "corpus/$t" -max_len=65536
  fi
done
exit "$status"
