#!/usr/bin/env bash
# tools/check_portable.sh -- build the extension with CMake option
# PYNN_PORTABLE_ONLY=ON (the portable C path alone: what aarch64, ppc64le and
# Windows-on-ARM builds compile) in a build directory of its own, and check what
# went into it:
#   - CMake chose no SIMD kernels;
#   - no file included an x86 intrinsics header (*intrin.h) or <cpuid.h>
#     (ninja's dependency log of every object, the Cython module's included);
#   - the core library defines no AVX kernel;
#   - on x86-64, the extension module holds no AVX, AVX2 or AVX-512
#     instruction: no VEX/EVEX mnemonic (v...) and no ymm/zmm register.
# With arguments, pytest then runs with them against that build, with
# PYNN_EXPECT_PORTABLE=1 (tests/test_portable.py then expects the generic path
# alone); the build is imported through PYTHONPATH, so PYTHON's environment must
# not hold an editable install of pynn (a regular install is fine: PYTHONPATH
# comes first), and tests that start Python without PYTHONPATH (test_bench.py,
# test_sklearn_mlp_suite.py) would test the installed pynn instead: leave them out.
#
# Usage: tools/check_portable.sh [pytest args...]
#   e.g. tools/check_portable.sh tests/test_portable.py tests/test_kernels.py
# Environment: PYTHON (default python3), BUILD (default build/portable-check).
# PYTHON needs NumPy; Cython, CMake >= 3.21 and ninja are pip-installed into its
# environment if missing (the build requirements pyproject.toml names).
# About a minute on two cores (the build), plus the tests asked for.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PYTHON=${PYTHON:-python3}
BUILD=${BUILD:-build/portable-check}
start=$(date +%s)

# build tools, in PYTHON's environment (its bin directory first on PATH)
PYBIN=$("$PYTHON" -c 'import os, sys; print(os.path.dirname(sys.executable))')
export PATH="$PYBIN:$PATH"
missing=()
"$PYTHON" -c 'import Cython' 2>/dev/null || missing+=("cython>=3.0")
command -v cmake >/dev/null || missing+=("cmake>=3.21")
command -v ninja >/dev/null || missing+=(ninja)
if [ ${#missing[@]} -gt 0 ]; then
  echo "check_portable: pip-installing ${missing[*]}"
  "$PYTHON" -m pip install -q "${missing[@]}"
fi

rm -rf "$BUILD"
mkdir -p "$(dirname "$BUILD")"  # (a fresh clone has no build/ to log into)
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython_EXECUTABLE="$(command -v "$PYTHON")" \
  -DPYNN_PORTABLE_ONLY=ON > "$BUILD.configure.log" 2>&1 || { cat "$BUILD.configure.log"; exit 1; }
mv "$BUILD.configure.log" "$BUILD/configure.log"
grep -q "pynn: x86-64 SIMD kernels: OFF" "$BUILD/configure.log" || {
  grep "pynn:" "$BUILD/configure.log"
  echo "check_portable: FAILED: CMake chose the SIMD kernels" >&2
  exit 1
}
cmake --build "$BUILD" --target _core > "$BUILD/build.log" 2>&1 || { cat "$BUILD/build.log"; exit 1; }
if grep -E "warning:" "$BUILD/build.log"; then
  echo "check_portable: FAILED: compiler warnings (above)" >&2
  exit 1
fi
module=$(find "$BUILD" -maxdepth 1 \( -name '_core*.so' -o -name '_core*.pyd' \) | head -n 1)
[ -n "$module" ] || { echo "check_portable: FAILED: no extension module built" >&2; exit 1; }

fail=0
headers=$(ninja -C "$BUILD" -t deps | grep -E '(intrin\.h|/cpuid\.h)$' | sort -u || true)
if [ -n "$headers" ]; then
  echo "check_portable: FAILED: x86 intrinsics headers included:" >&2
  echo "$headers" >&2
  fail=1
fi
if nm "$BUILD/libpynn_core.a" 2>/dev/null | grep -Ei ' [TtDdRr] .*(avx|cpuid|xgetbv)'; then
  echo "check_portable: FAILED: SIMD symbols in the core library (above)" >&2
  fail=1
fi
case "$(uname -m)" in
  x86_64|amd64)
    avx=$(objdump -d --no-show-raw-insn "$module" | grep -cE '^\s*[0-9a-f]+:\s+v[a-z0-9]+\b|%[yz]mm[0-9]' || true)
    if [ "$avx" != 0 ]; then
      echo "check_portable: FAILED: $avx AVX instructions in $module" >&2
      fail=1
    else
      echo "check_portable: $module: no AVX instruction (0 VEX/EVEX mnemonics, 0 ymm/zmm)"
    fi ;;
  *) echo "check_portable: not x86-64: instruction check skipped" ;;
esac
[ $fail = 0 ] || exit 1
echo "check_portable: build and checks passed in $(( $(date +%s) - start )) s"

if [ $# -gt 0 ]; then
  # the package: the sources next to the module just built
  pkg="$ROOT/$BUILD/pkg"
  rm -rf "$pkg"
  mkdir -p "$pkg"
  cp -R pynn "$pkg/pynn"
  rm -rf "$pkg"/pynn/_core*.so "$pkg"/pynn/_core*.pyd "$pkg"/pynn/__pycache__
  cp "$module" "$pkg/pynn/"
  where=$(cd "$pkg" && PYTHONPATH="$pkg" "$PYTHON" -c 'import pynn._core as c; print(c.__file__)')
  case "$where" in
    "$pkg"/*) ;;
    *) echo "check_portable: another pynn is imported first ($where): editable install?" >&2
       exit 1 ;;
  esac
  args=()
  for a in "$@"; do
    if [ -e "$ROOT/${a%%::*}" ]; then args+=("$ROOT/$a"); else args+=("$a"); fi
  done
  # from inside the package's directory, so the source tree's pynn/ is not on sys.path
  cd "$pkg"
  PYTHONPATH="$pkg${PYTHONPATH:+:$PYTHONPATH}" PYNN_EXPECT_PORTABLE=1 \
    "$PYTHON" -m pytest -p no:cacheprovider --rootdir "$ROOT" -c "$ROOT/pyproject.toml" "${args[@]}"
fi
