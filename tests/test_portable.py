"""The SIMD paths pynn offers are the ones the CPU and the operating system can
run, and a portable-only build -- CMake option PYNN_PORTABLE_ONLY on x86-64,
and every build for another processor -- runs the generic path alone and holds
no AVX instruction.

PYNN_EXPECT_PORTABLE=1 in the environment says the pynn under test is such a
build (tools/check_portable.sh sets it when it runs tests against its build)."""
import os
import platform
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import pynn
from pynn import _core

PORTABLE = os.environ.get("PYNN_EXPECT_PORTABLE") == "1"
X86_64 = platform.machine().lower() in ("x86_64", "amd64")


def _linux_cpu_flags():
    """The CPU flags Linux reports: features of the CPU that the kernel also
    supports (it drops AVX, AVX2, FMA, AVX-512 when it does not save their
    registers), i.e. what cpuid and XGETBV together say."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def _expected_paths():
    if PORTABLE or not X86_64:
        return ("generic",)
    flags = _linux_cpu_flags()
    if flags is None:
        pytest.skip("no /proc/cpuinfo to compare cpuid with")
    paths = ["generic"]
    if {"avx", "avx2", "fma"} <= flags:
        paths.append("avx2")
        if "avx512f" in flags:
            paths.append("avx512")
            if "avx512_bf16" in flags:
                paths.append("avx512_bf16")
            # (Linux grants the tile state on request since 5.16)
            if {"amx_tile", "amx_bf16"} <= flags:
                paths.append("amx")
    return tuple(paths)


def _default(supported):
    """The path a new process takes: the best (amx where the CPU has it)."""
    return supported[-1]


def _simd_path_in_child(tmp_path, forced=None):
    """pynn.simd_path() of a fresh process (PYNN_SIMD=forced, or unset)."""
    env = {k: v for k, v in os.environ.items() if k != "PYNN_SIMD"}
    if forced is not None:
        env["PYNN_SIMD"] = forced
    out = subprocess.run([sys.executable, "-c", "import pynn; print(pynn.simd_path())"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, check=True)
    return out.stdout.strip()


def test_the_paths_offered_are_those_the_cpu_and_the_os_run():
    assert _core.simd_supported() == _expected_paths()


def test_a_new_process_takes_the_best_path_and_pynn_simd_only_among_those(tmp_path):
    supported = _expected_paths()
    assert _simd_path_in_child(tmp_path) == _default(supported)
    for name in _core.SIMD_PATHS:
        # a path the CPU (or the build) cannot run is ignored: the best one instead
        want = name if name in supported else _default(supported)
        assert _simd_path_in_child(tmp_path, name) == want


@pytest.mark.skipif(not PORTABLE, reason="not a portable-only build (PYNN_EXPECT_PORTABLE)")
def test_a_portable_build_runs_the_generic_path_only():
    assert pynn.simd_path() == "generic"
    assert _core.simd_supported() == ("generic",)
    for name in _core.SIMD_PATHS[1:]:
        with pytest.raises(ValueError, match="cannot run"):
            _core.set_simd_path(name)
    # and computes: a small fit, predictions finite and bitwise repeatable
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((64, 5)), rng.integers(0, 3, 64)
    a = pynn.MLPClassifier((7,), max_iter=5, random_state=0, tol=None).fit(X, y)
    b = pynn.MLPClassifier((7,), max_iter=5, random_state=0, tol=None).fit(X, y)
    assert np.isfinite(a.predict_proba(X)).all()
    assert a.predict_proba(X).tobytes() == b.predict_proba(X).tobytes()


def _avx_instructions(path):
    """Lines of the disassembly of `path` that are AVX, AVX2 or AVX-512
    instructions: VEX/EVEX mnemonics (v...) or ymm/zmm registers."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", path], capture_output=True,
                         text=True, check=True).stdout
    avx = re.compile(r"^\s*[0-9a-f]+:\s+v[a-z0-9]+\b|%[yz]mm\d")
    return [line for line in out.splitlines() if avx.search(line)]


@pytest.mark.skipif(not X86_64 or shutil.which("objdump") is None,
                    reason="needs objdump and x86-64")
def test_avx_instructions_only_in_a_build_with_the_simd_kernels():
    found = _avx_instructions(_core.__file__)
    if PORTABLE:
        assert found == [], f"AVX code in a portable-only build: {found[:5]}"
    else:
        # the kernels are there (and the check above would see them)
        assert len(found) > 100
