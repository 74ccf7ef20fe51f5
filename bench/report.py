"""What the benchmark prints: the machine description, case titles and tables
(plain text and Markdown)."""
import os
import platform
from dataclasses import dataclass, field

from cases import LEARNING_RATE
from timing import ROUNDS


@dataclass
class Row:
    tool: str
    samples_per_s: float = None
    gflops: float = None
    runs: int = 0
    note: str = ""


@dataclass
class CaseResult:
    case: object           # cases.Case
    n: int                 # samples per epoch (rows predicted)
    peak: float            # GEMM GFLOP/s at the start of the case
    gemm: tuple            # (m, k, n) of that GEMM
    rows: list = field(default_factory=list)
    check: dict = None     # {dtype: max rel err} of pynn's check
    warning: str = None    # the GEMM rate moved during the case


def machine_lines(args, cores, versions, missing):
    """The lines that describe the machine, the tools and the run."""
    from pynn._platform import cpu_model
    lines = [f"CPU: {cpu_model()}{cpu_identity()}, {os.cpu_count()} logical cores, load average "
             f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at the start",
             f"threads: {args.threads}, pinned to core(s) {cores or 'not pinned'}",
             f"python {platform.python_version()}, {platform.system()} {platform.release()}"]
    lines += list(dict.fromkeys(versions[p] for p in args.peers if p in versions))
    lines += [f"{p}: unavailable ({missing[p]})" for p in args.peers if p in missing]
    if args.dtype == "bfloat16":
        lines += bf16_lines()
    turns = "" if args.quick else f", the tools taking turns in {ROUNDS} rounds"
    lines += [f"epochs: {'quick' if args.quick else 'full'}, best of {args.repeats} "
              f"timed run(s) after a warm-up{turns}, lr {LEARNING_RATE}"]
    return lines


def _amd_core(family, model):
    """The AMD core generation of a family and model (None if not known here)."""
    if family == 0x17:
        return "Zen/Zen 2"
    if family == 0x19:
        return "Zen 4" if model in range(0x10, 0x20) or model in range(0x60, 0x80) or \
            model in range(0xA0, 0xB0) else "Zen 3"
    if family == 0x1A:
        return "Zen 5"
    return None


def _cpuinfo(path="/proc/cpuinfo"):
    """The first processor's fields in /proc/cpuinfo, {key: value} (empty where
    there is none)."""
    info = {}
    try:
        with open(path) as f:
            for line in f:
                if not line.strip():
                    if info:
                        break
                    continue
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return info


def _read(path):
    with open(path) as f:
        return f.read().strip()


def cpu_identity(cpuinfo="/proc/cpuinfo", caches="/sys/devices/system/cpu/cpu0/cache"):
    """" (vendor family F model M, AMD's core generation; L1d, L2, L3 sizes)": what
    tells the machines of different sessions apart, whose model names can be the
    same ("AMD EPYC"); empty where neither is known."""
    info = _cpuinfo(cpuinfo)
    parts = []
    try:
        family, model = int(info["cpu family"]), int(info["model"])
        ident = f"{info.get('vendor_id', '?')} family {family} model {model}"
        core = _amd_core(family, model) if info.get("vendor_id") == "AuthenticAMD" else None
        parts.append(f"{ident}, {core}" if core else ident)
    except (KeyError, ValueError):
        pass
    sizes = []
    try:
        entries = sorted(os.listdir(caches))
    except OSError:
        entries = []
    for entry in entries:
        d = os.path.join(caches, entry)
        try:
            level, kind, size = (_read(os.path.join(d, n)) for n in ("level", "type", "size"))
        except OSError:
            continue
        if kind in ("Data", "Unified"):
            sizes.append(f"L{level}{'d' if kind == 'Data' else ''} {size}")
    if sizes:
        parts.append(", ".join(sizes))
    return f" ({'; '.join(parts)})" if parts else ""


def cpu_flags():
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    return set(_cpuinfo().get("flags", "").split())


def bf16_lines():
    """What a bfloat16 run adds: the CPU's bfloat16 instructions, pynn's SIMD
    path, and what the rows are."""
    from pynn import _core
    flags = cpu_flags()
    have = ", ".join(f"{f} {'yes' if f in flags else 'no'}"
                     for f in ("avx512_bf16", "amx_bf16", "amx_tile"))
    return [f"bfloat16: CPU flags {have} (/proc/cpuinfo); pynn SIMD path {_core.simd_path()}",
            "bfloat16 rows: pynn is dtype='bfloat16' (float32 weights, bfloat16 operands of "
            "the products), pynn.f32 the same model in float32 (its 'pynn speedup' is the "
            "mode's gain); numpy, sklearn and jax have no bfloat16 training and are left out"]


def case_title(result, dtype):
    """(name, one-line description) of a case's result."""
    case, (m, k, n) = result.case, result.gemm
    # numpy has no bfloat16 matmul: a bfloat16 run relates to numpy's float32 rate
    peak = (f"numpy float32 ({m}x{k}) @ ({k}x{n}); numpy has no bfloat16 matmul"
            if dtype == "bfloat16" else f"numpy {dtype} ({m}x{k}) @ ({k}x{n})")
    return case.name, (f"{case.describe(result.n)}, {dtype}; "
                       f"{case.flops_per_sample():,} FLOP per "
                       f"{'row' if case.predict else 'sample'}; GEMM peak "
                       f"{result.peak:.1f} GFLOP/s ({peak})")


def table(result, markdown=False):
    rows = result.rows
    pynn_row = next((r for r in rows if r.tool == "pynn" and r.samples_per_s), None)
    header = ["tool", "samples/s", "GFLOP/s", "% of GEMM peak", "pynn speedup"]
    body, notes = [], []
    for r in rows:
        if r.samples_per_s is None:
            body.append([r.tool, "-", "-", "-", "-"])
        else:
            speed = (f"{pynn_row.samples_per_s / r.samples_per_s:.2f}x" if pynn_row else "-")
            body.append([r.tool, f"{r.samples_per_s:,.0f}", f"{r.gflops:.1f}",
                         f"{100 * r.gflops / result.peak:.0f}%", speed])
        if r.note:
            notes.append(f"{r.tool}: {r.note}")
    if markdown:
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
        lines += ["| " + " | ".join(b) + " |" for b in body]
        lines += [""] + [f"- {n}" for n in notes] if notes else []
        return "\n".join(lines)
    widths = [max(len(x[i]) for x in [header] + body) for i in range(len(header))]
    fmt = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(cells, widths)))
    lines = [fmt(header), fmt(["-" * w for w in widths])] + [fmt(b) for b in body]
    lines += [f"  note: {n}" for n in notes]
    return "\n".join(lines)


def write_markdown(path, machine, results, dtype):
    with open(path, "w") as f:
        f.write("# pynn benchmark\n\n" + "".join(f"- {line}\n" for line in machine))
        for r in results:
            name, description = case_title(r, dtype)
            f.write(f"\n## {name}\n\n{description}\n\n{table(r, markdown=True)}\n")
            if r.warning:
                f.write(f"\n**{r.warning}**\n")
