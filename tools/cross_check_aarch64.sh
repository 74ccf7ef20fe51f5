#!/usr/bin/env bash
# tools/cross_check_aarch64.sh -- the portable C core built for a non-x86 target
# and with the plain-C forms MSVC compiles, checked against the x86-64 build.
#
#  1. Every portable core file (csrc/ without the x86 SIMD kernels and without
#     PYNN_X86_SIMD: what an aarch64 wheel compiles) is compiled for aarch64 by
#     GCC's cross compiler with the build's flags plus -Werror -Wvla (MSVC has
#     no VLAs), with and without OpenMP: any warning fails.
#  2. If clang is installed, the same for aarch64 with clang (the compiler
#     family of macOS arm64), and the whole core, SIMD kernels included, for
#     x86-64 with clang; compile only.
#  3. tools/cross_check/driver.c (training runs, predictions and kernels on
#     small networks, every number printed as a hex float) is linked against
#       a) the x86-64 portable core (native gcc),
#       b) the same with -DPYNN_NO_GNUC_EXT: the plain-C overflow checks,
#          128-bit product, volatile flags and no prefetch that MSVC compiles,
#          plus -Wpedantic (ISO C11 only),
#       c) the aarch64 portable core, run under qemu-aarch64,
#     and the outputs compared: (b) must equal (a) bit for bit; (c) must equal
#     (a) bit for bit on the "exact" lines (only +, -, *, /, sqrt reach them)
#     and to a tolerance on the "libm" lines (exp, tanh, log, pow: libm may
#     round those differently per target).
#
# Usage: tools/cross_check_aarch64.sh [--install]
#   --install  apt-get install the cross compiler and qemu first (Debian/Ubuntu, root)
# Environment: CC (native compiler, default gcc), CROSS_CC (default
#   aarch64-linux-gnu-gcc), CLANG (default clang; none: skip those compiles),
#   QEMU (default qemu-aarch64, else qemu-aarch64-static),
#   A64_SYSROOT (the aarch64 libraries qemu loads, default /usr/aarch64-linux-gnu),
#   OUT (scratch directory, default build/cross-check), JOBS (parallel compiles).
# About 20 s on two cores (30 s with clang's compiles) once the packages are
# installed; --install fetches about 54 MB (gcc-aarch64-linux-gnu,
# libc6-dev-arm64-cross, qemu-user): well under a minute with a near mirror.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--install" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends gcc-aarch64-linux-gnu libc6-dev-arm64-cross \
    qemu-user >/dev/null
fi

CC=${CC:-gcc}
CROSS_CC=${CROSS_CC:-aarch64-linux-gnu-gcc}
CLANG=${CLANG:-clang} # CLANG=none skips the clang compiles
QEMU=${QEMU:-$(command -v qemu-aarch64 || command -v qemu-aarch64-static || true)}
A64_SYSROOT=${A64_SYSROOT:-/usr/aarch64-linux-gnu} # the target's libc, libgomp for qemu
OUT=${OUT:-build/cross-check}
JOBS=${JOBS:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)}
for tool in "$CC" "$CROSS_CC" python3; do
  command -v "$tool" >/dev/null || { echo "cross_check: $tool not found (try --install)" >&2; exit 2; }
done
[ -n "$QEMU" ] || { echo "cross_check: qemu-aarch64 not found (try --install)" >&2; exit 2; }

# The core's files: untyped ones once, typed ones once per element type
# (CMakeLists.txt), and the x86-only ones.
UNTYPED="dispatch layout rng names gemm_emu"
TYPED="gemm act_loss dense sparse optim net train"
X86_ONLY="gemm_avx2 gemm_avx512 vexp_avx2 optim_avx2 optim_avx512"
# The build's flags for GCC and Clang (CMakeLists.txt), warnings as errors.
FLAGS="-std=c11 -O3 -ffp-contract=off -fno-math-errno -Wall -Wextra -Werror -Wvla -Icsrc"

rm -rf "$OUT"
mkdir -p "$OUT"

# compile_core DIR COMPILER EXTRA_FLAGS [x86]: every core file into DIR/*.o,
# JOBS at a time; with "x86", the SIMD kernels and PYNN_X86_SIMD too.
compile_core() {
  local dir=$1 cc=$2 extra=$3 x86=${4:-} jobs=()
  mkdir -p "$dir"
  local simd=""
  [ -n "$x86" ] && simd="-DPYNN_X86_SIMD=1"
  for f in $UNTYPED; do
    jobs+=("$cc $FLAGS $extra $simd -c csrc/$f.c -o $dir/$f.o")
  done
  for f in $TYPED; do
    jobs+=("$cc $FLAGS $extra $simd -DPYNN_TYPE_F32=1 -c csrc/$f.c -o $dir/${f}_f32.o")
    jobs+=("$cc $FLAGS $extra $simd -DPYNN_TYPE_F64=1 -c csrc/$f.c -o $dir/${f}_f64.o")
  done
  if [ -n "$x86" ]; then
    jobs+=("$cc $FLAGS $extra $simd -mavx2 -mfma -c csrc/gemm_avx2.c -o $dir/gemm_avx2.o")
    jobs+=("$cc $FLAGS $extra $simd -mavx2 -mfma -c csrc/vexp_avx2.c -o $dir/vexp_avx2.o")
    jobs+=("$cc $FLAGS $extra $simd -mavx512f -mavx2 -mfma -c csrc/gemm_avx512.c -o $dir/gemm_avx512.o")
    jobs+=("$cc $FLAGS $extra $simd -mavx2 -mfma -c csrc/optim_avx2.c -o $dir/optim_avx2.o")
    jobs+=("$cc $FLAGS $extra $simd -mavx512f -mavx2 -mfma -c csrc/optim_avx512.c -o $dir/optim_avx512.o")
  fi
  printf '%s\n' "${jobs[@]}" | xargs -P "$JOBS" -I{} sh -c '{} 2>&1' > "$dir/compile.log" || {
    cat "$dir/compile.log" >&2
    echo "cross_check: compiling for $dir failed (see above)" >&2
    exit 1
  }
  if [ -s "$dir/compile.log" ]; then # -Werror makes warnings errors; anything else printed?
    cat "$dir/compile.log" >&2
    echo "cross_check: the compiler printed something for $dir" >&2
    exit 1
  fi
  echo "cross_check: $dir: $(ls "$dir"/*.o | wc -l) objects, no warnings ($cc $extra${x86:+ with SIMD})"
}

start=$(date +%s)
# 1. aarch64, GCC, with and without OpenMP
compile_core "$OUT/a64" "$CROSS_CC" "-fopenmp"
compile_core "$OUT/a64-noomp" "$CROSS_CC" ""
# 2. clang, aarch64 (compile only) and x86-64 with the SIMD kernels
if command -v "$CLANG" >/dev/null; then
  sysroot=""
  [ -d "$A64_SYSROOT/include" ] && sysroot="-isystem $A64_SYSROOT/include"
  compile_core "$OUT/clang-a64" "$CLANG" "--target=aarch64-linux-gnu $sysroot"
  compile_core "$OUT/clang-x86" "$CLANG" "-fopenmp=libgomp" x86
else
  echo "cross_check: $CLANG not found: its compiles skipped"
fi
# 3. the driver against (a) x86-64 portable, (b) plain-C fallbacks, (c) aarch64
compile_core "$OUT/x86" "$CC" "-fopenmp"
compile_core "$OUT/x86-fallback" "$CC" "-fopenmp -DPYNN_NO_GNUC_EXT -Wpedantic"
DRIVER="tools/cross_check/driver.c"
$CC $FLAGS -fopenmp "$DRIVER" "$OUT"/x86/*.o -lm -o "$OUT/driver-x86"
$CC $FLAGS -fopenmp "$DRIVER" "$OUT"/x86-fallback/*.o -lm -o "$OUT/driver-x86-fallback"
$CROSS_CC $FLAGS -fopenmp "$DRIVER" "$OUT"/a64/*.o -lm -o "$OUT/driver-a64"
"$OUT/driver-x86" > "$OUT/x86.txt"
"$OUT/driver-x86-fallback" > "$OUT/x86-fallback.txt"
OMP_NUM_THREADS=2 "$QEMU" -L "$A64_SYSROOT" "$OUT/driver-a64" > "$OUT/a64.txt"

python3 - "$OUT" <<'EOF'
import sys

out = sys.argv[1]

def read(name):
    lines = {}
    with open(f"{out}/{name}.txt") as fh:
        for line in fh:
            kind, case, *values = line.split()
            lines[case] = (kind, values)
    return lines

ref = read("x86")
fallback = read("x86-fallback")
a64 = read("a64")
failed = False
if fallback != ref:
    bad = sorted(c for c in ref if fallback.get(c) != ref[c])
    print(f"cross_check: plain-C fallbacks differ from the GCC builtins' build in {bad}")
    failed = True
else:
    print(f"cross_check: plain-C fallbacks (MSVC's forms): all {len(ref)} cases bit for bit "
          "equal to the x86-64 build")
if set(a64) != set(ref):
    print(f"cross_check: aarch64 ran other cases: {sorted(set(a64) ^ set(ref))}")
    failed = True
exact = exact_equal = approx = identical = 0
worst = 0.0
for case, (kind, want) in ref.items():
    if case not in a64:
        continue
    got = a64[case][1]
    if kind == "exact":
        exact += len(want)
        exact_equal += sum(g == w for g, w in zip(got, want))
        if got != want:
            diff = sum(g != w for g, w in zip(got, want)) + abs(len(got) - len(want))
            print(f"cross_check: aarch64 differs from x86-64 in exact case {case} "
                  f"({diff} of {len(want)} values)")
            failed = True
        continue
    tol = 1e-4 if case.endswith("_f32") else 1e-9
    for g, w in zip(got, want):
        approx += 1
        g, w = float.fromhex(g), float.fromhex(w)
        identical += g == w
        err = abs(g - w) / max(abs(w), 1e-3)
        worst = max(worst, err)
        if not err <= tol:
            print(f"cross_check: aarch64 {case}: {g!r} against {w!r} on x86-64")
            failed = True
            break
print(f"cross_check: aarch64 under qemu: {exact_equal} of {exact} exact values bit for bit "
      f"equal to x86-64; {approx} libm-dependent values, {identical} bit for bit equal, "
      f"largest relative difference {worst:.1e}")
sys.exit(1 if failed else 0)
EOF
echo "cross_check: passed in $(( $(date +%s) - start )) s"
