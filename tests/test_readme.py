"""The README as a newcomer meets it.

Each ```python block runs alone, as a script in a fresh interpreter whose working
directory is a temporary one outside the repository (so the installed pynn is imported
and nothing from an earlier block is defined), and must exit 0 without printing a
warning: UserWarnings (ConvergenceWarning included) are errors, and stderr must not
mention any other warning. A test is named after the section holding its block. What a
block prints is checked where the README states or implies it, and the sample output of
`verbose=2` is checked against what the code prints now.

The install commands are checked as text: the two set-up commands from a clone, and the
distribution's name wherever pynn is installed from an index.
"""
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def _fences():
    """(heading, language, code) of every fenced block, in order; heading is the
    title of the section that holds it."""
    heading, fences, lang, code = "README", [], None, []
    for line in README.read_text(encoding="utf-8").splitlines(keepends=True):
        if lang is None:
            if line.startswith("```"):
                lang, code = line[3:].strip(), []
            elif line.startswith("#"):
                heading = line.lstrip("#").strip()
        elif line.startswith("```"):
            fences.append((heading, lang, "".join(code)))
            lang = None
        else:
            code.append(line)
    assert lang is None, "README.md has an unclosed code fence"
    return fences


FENCES = _fences()


def _python_blocks():
    """{id: code} of the python blocks; id is the section's title (numbered when a
    section holds several)."""
    blocks, counts = {}, {}
    for heading, lang, code in FENCES:
        if lang == "python":
            counts[heading] = counts.get(heading, 0) + 1
            name = heading if counts[heading] == 1 else f"{heading} #{counts[heading]}"
            blocks[name] = code
    return blocks


BLOCKS = _python_blocks()


def _shown_output(section):
    """The ```text block of a section: the output the README says its code prints."""
    shown = [code for heading, lang, code in FENCES if heading == section and lang == "text"]
    assert len(shown) == 1, f"expected one ```text block in section {section!r}"
    return shown[0].splitlines()


def _number(pattern, out):
    match = re.search(pattern, out)
    assert match, f"{pattern!r} not in the output:\n{out}"
    return float(match.group(1))


PROGRESS_LINE = re.compile(
    r"Iteration (\d+), loss = (\d+\.\d{8}), \d+(?:\.\d\d[kMG])? samples/s")


def _check_progress(out, workdir):
    # the lines printed now have the shape of the README's sample, and its losses
    # (which depend only on random_state, up to float32 rounding of the SIMD path)
    shown = _shown_output("Progress")
    printed = out.splitlines()
    assert len(printed) == len(shown), (printed, shown)
    for now, then in zip(printed, shown):
        m_now, m_then = PROGRESS_LINE.fullmatch(now), PROGRESS_LINE.fullmatch(then)
        assert m_now and m_then, (now, then)
        assert m_now.group(1) == m_then.group(1)
        assert float(m_now.group(2)) == pytest.approx(float(m_then.group(2)), rel=1e-5), \
            "the README's verbose=2 sample shows other losses than the code prints now"


def _check_example(out, workdir):
    assert _number(r"test accuracy ([0-9.]+)", out) >= 0.95
    # it converged: the README says it stops before max_iter (and a warning would fail)
    assert _number(r"after (\d+) epochs", out) < 500
    assert "[(64, 64), (64, 10)]" in out


def _check_features(out, workdir):
    assert _number(r"best validation accuracy ([0-9.]+)", out) > 0.8
    assert re.search(r"^\[('(ant|bee|cat|dog|eel|fox|gnu|hen|jay|yak)' ?){3}\] \(1, 10\)$",
                     out, flags=re.M), out


def _check_saving(out, workdir):
    assert re.search(r"saved [0-9,]+ bytes; loaded a MLPClassifier", out), out
    assert (workdir / "model.pynn").stat().st_size > 0


def _check_plots(out, workdir):
    assert (workdir / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _check_dask(out, workdir):
    assert _number(r"cv accuracy ([0-9.]+)", out) > 0.8
    assert _number(r"incremental: held-out accuracy ([0-9.]+)", out) > 0.8


def _check_math(out, workdir):
    # the block's own assert compared the gradients; the shapes are those commented
    assert "(8, 10) (10,)" in out


def _check_robustness(out, workdir):
    assert re.search(r"^refused: .*parameters", out, flags=re.M), out


# what each section's block must print (or leave behind), beyond running cleanly
CHECKS = {
    "Example": _check_example,
    "Training features": _check_features,
    "Progress": _check_progress,
    "Saving models": _check_saving,
    "Plots": _check_plots,
    "Scaling out with Dask": _check_dask,
    "The math, inspectable": _check_math,
    "Robustness": _check_robustness,
}


def test_checks_name_existing_blocks():
    # a renamed section must not silently drop its block's checks
    assert set(CHECKS) <= set(BLOCKS), set(CHECKS) - set(BLOCKS)
    assert len(BLOCKS) >= 8


@pytest.mark.parametrize("name", list(BLOCKS))
def test_block_runs_alone(name, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(BLOCKS[name], encoding="utf-8")
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)          # nothing but the installed packages
    env.pop("PYTHONWARNINGS", None)
    env["MPLBACKEND"] = "Agg"
    proc = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", str(script)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"block {name!r} failed:\n{proc.stdout}\n{proc.stderr}"
    assert "warning" not in proc.stderr.lower(), f"block {name!r} warned:\n{proc.stderr}"
    check = CHECKS.get(name)
    if check is not None:
        check(proc.stdout, tmp_path)


# ---- install commands (shell blocks are not run) ----

SETUP_COMMANDS = ['pip install . && python -m pynn', 'pip install ".[test]" && pytest']


def test_setup_commands_from_a_clone():
    shell = [code.strip() for heading, lang, code in FENCES
             if heading == "Set up" and lang in ("bash", "console", "sh", "shell")]
    assert shell == SETUP_COMMANDS


def test_install_commands_use_the_distribution_name():
    # the name pynn on PyPI is another project's (PyNN); ours is pynn-mlp
    text = README.read_text(encoding="utf-8")
    installs = re.findall(r"pip install ([^`\n&]*)", text)    # what each installs
    assert installs
    for cmd in installs:
        assert not re.search(r"""(?<![\w.-])["']?pynn(?![\w-])""", cmd), cmd
    assert "pip install pynn-mlp" in text


def test_named_extras_exist():
    tomllib = pytest.importorskip("tomllib")
    with open(ROOT / "pyproject.toml", "rb") as f:
        extras = set(tomllib.load(f)["project"]["optional-dependencies"])
    named = set(re.findall(r"""(?:pynn-mlp|["']\.)\[(\w+)\]""",
                           README.read_text(encoding="utf-8")))
    assert named and named <= extras, named - extras
