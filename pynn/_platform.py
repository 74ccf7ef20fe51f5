"""What the demo and the benchmark say about the machine they ran on."""
from __future__ import annotations

import platform


def cpu_model():
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def simd_request(value, paths, supported):
    """What ``PYNN_SIMD=value`` asks of the core: ``(path, problem)``.

    `paths` are the core's SIMD path names, `supported` those this CPU can run.
    The value is taken case-insensitively, without surrounding whitespace.
    `path` is the path to switch to, or None to keep the core's own choice
    (the best path the CPU runs); `problem` is None, or says why the value
    cannot be honoured (empty, not a path, or a path this CPU cannot run)."""
    name = value.strip().lower()
    if name in supported:
        return name, None
    if not name:
        why = "is empty"
    elif name in paths:
        why = f"names a path this CPU ({cpu_model()}) cannot run"
    else:
        why = "is not a SIMD path"
    return None, (f"PYNN_SIMD={value!r} {why}; valid values (any case): {', '.join(paths)}; "
                  f"this CPU can run: {', '.join(supported)}")
