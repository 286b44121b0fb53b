#!/usr/bin/env bash
# Build and run one libFuzzer target.
#
#   tools/fuzz.sh TARGET SECONDS [libFuzzer options...]
#
# TARGET: png, jpeg      clang-built harnesses of the C shim (fuzz/c/), ASan + UBSan
#         image          the Swift ImageDecoder (PNG and JPEG) over the same seeds, ASan
#         onnx           ONNX parse + graph build + static specialisation + patterns (fuzz/ package), ASan
#         qmodel         .qmodel decode + validate + a run of small models on the int8 runtime, ASan
#         seeds          (re)generate the generated seeds under fuzz/seeds/ (png, jpeg, onnx, qmodel)
#
# One fuzzer process, in-process, no -jobs/-workers (the machine is shared). Findings land in fuzz/out/TARGET/ (crash-*,
# leak-*, oom-*, timeout-*), the growing corpus in fuzz/out/TARGET/corpus (not committed); the committed seeds in
# fuzz/seeds/TARGET are read-only inputs. Rerun one input: `tools/fuzz.sh onnx 0 path/to/crash-file`.
# Swift targets build with `swift build -c release --sanitize fuzzer --sanitize address -Xswiftc -parse-as-library
# -Xswiftc -sanitize=fuzzer,address`
# in fuzz/.build (a separate scratch folder; the main package stays free of sanitizer and fuzzer flags).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET=${1:?usage: tools/fuzz.sh TARGET SECONDS [libFuzzer options...]}
SECONDS_TO_RUN=${2:-60}
shift 2 || shift $#
# Swift's own crash backtracer reads memory from a helper thread, which ASan reports as a wild read: leave the
# stack traces to the sanitizers. Set before building too: SwiftPM rebuilds everything when the environment changes.
export SWIFT_BACKTRACE=${SWIFT_BACKTRACE:-enable=no}
CLANG=${CLANG:-$(dirname "$(readlink -f "$(command -v swift)")")/clang}
OUT=fuzz/out/$TARGET
mkdir -p "$OUT/corpus" fuzz/.build

# CODEC_LIBS=DIR links libpng/libjpeg built with sanitizer coverage from DIR/lib and DIR/include (see README,
# "Fuzzing"), so libFuzzer sees the codecs' branches too; without it the system libraries are used and only the
# shim's own code is coverage-guided.
build_c() { # name source
  local bin=fuzz/.build/fuzz-$1 flags libs
  if [ -n "${CODEC_LIBS:-}" ]; then
    bin=$bin-instrumented
    flags="-I $CODEC_LIBS/include -I $CODEC_LIBS/include/libpng16"
    libs="$CODEC_LIBS/lib/libpng16.a $CODEC_LIBS/lib/libjpeg.a -lz"
  else
    flags=$(pkg-config --cflags libpng16 libjpeg); libs=$(pkg-config --libs libpng16 libjpeg)
  fi
  if [ ! -x "$bin" ] || [ "$2" -nt "$bin" ] || [ Sources/CImageCodecs/cimagecodecs.c -nt "$bin" ]; then
    "$CLANG" -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
      -I Sources/CImageCodecs/include $flags "$2" Sources/CImageCodecs/cimagecodecs.c $libs -lm -o "$bin"
  fi
  echo "$bin"
}

build_swift() { # product (FUZZ_SKIP_BUILD=1 reuses the last build: a changed build command rebuilds everything)
  if [ -n "${FUZZ_SKIP_BUILD:-}" ] && [ -x "fuzz/.build/release/$1" ]; then echo "fuzz/.build/release/$1"; return; fi
  # -Xswiftc -sanitize=fuzzer,address: SwiftPM passes `-sanitize=fuzzer -sanitize=address` as two flags, and the
  # Swift 6.3 driver keeps only the last, so without this the Swift code is built with ASan but without libFuzzer's
  # coverage counters (libFuzzer then says "Is the code instrumented for coverage?" and only the C code guides it).
  (cd fuzz && swift build -c release --sanitize fuzzer --sanitize address -Xswiftc -parse-as-library \
     -Xswiftc -sanitize=fuzzer,address --product "$1" >&2)
  echo "fuzz/.build/release/$1"
}

case "$TARGET" in
  png)    BIN=$(build_c png fuzz/c/fuzz_png.c);   SEEDS=(fuzz/seeds/png);  DICT=(-dict=fuzz/dict/png.dict) ;;
  jpeg)   BIN=$(build_c jpeg fuzz/c/fuzz_jpeg.c); SEEDS=(fuzz/seeds/jpeg); DICT=(-dict=fuzz/dict/jpeg.dict) ;;
  image)  BIN=$(build_swift fuzz-image);  SEEDS=(fuzz/seeds/png fuzz/seeds/jpeg); DICT=() ;;
  onnx)   BIN=$(build_swift fuzz-onnx);   SEEDS=(fuzz/seeds/onnx); DICT=(-dict=fuzz/dict/onnx.dict) ;;
  qmodel) BIN=$(build_swift fuzz-qmodel); SEEDS=(fuzz/seeds/qmodel); DICT=(-dict=fuzz/dict/qmodel.dict) ;;
  seeds)
    mkdir -p fuzz/seeds/png fuzz/seeds/jpeg fuzz/seeds/onnx fuzz/seeds/qmodel
    "$CLANG" -O1 -I Sources/CImageCodecs/include $(pkg-config --cflags libpng16 libjpeg) fuzz/c/make_seeds.c \
      Sources/CImageCodecs/cimagecodecs.c $(pkg-config --libs libpng16 libjpeg) -lm -o fuzz/.build/make-seeds
    fuzz/.build/make-seeds fuzz/seeds/png fuzz/seeds/jpeg
    python3 fuzz/make_onnx_seeds.py fuzz/seeds/onnx
    ADAQUANT_FUZZ_WRITE_SEEDS=fuzz/seeds/qmodel "$(build_swift fuzz-qmodel)" -runs=0 fuzz/seeds/qmodel
    exit 0 ;;
  *) echo "unknown target '$TARGET' (png, jpeg, image, onnx, qmodel, seeds)" >&2; exit 64 ;;
esac

# A file argument reruns that input (regression check) instead of fuzzing.
if [ $# -gt 0 ] && [ -f "$1" ]; then exec "$BIN" "$@"; fi

# detect_leaks stays on (ASan's default); the Swift runtime's metadata caches are not leaks in LSan's sense.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
exec "$BIN" -max_total_time="$SECONDS_TO_RUN" -rss_limit_mb=2048 -malloc_limit_mb=1024 \
  -timeout=20 -max_len=${MAX_LEN:-65536} -artifact_prefix="$OUT/" -print_final_stats=1 "${DICT[@]}" "$@" \
  "$OUT/corpus" "${SEEDS[@]}"
