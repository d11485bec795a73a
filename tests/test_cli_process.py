"""The ``jaxclust`` command as a process (issue 16 §3): what a user sees in a shell.

Each scenario is one fresh interpreter (the behaviour is about the process: its exit status,
its stderr, the modules it loads, what is on disk when stdout closes early). Missing
optional packages are simulated with ``sys.modules[name] = None`` before ``jaxclust`` is
imported, which makes ``import name`` fail as if it were not installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _env(**extra):
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.update(extra)
    return env


def _python(code: str, **env) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON object as its last line."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=_env(**env), cwd=ROOT, timeout=120)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


# runs each command in-process (the interpreter is fresh), recording status and stderr
_RUNNER = """
import contextlib, io, json, sys, time
{prelude}
from jaxclust.cli import main
results = []
for argv in {argvs!r}:
    err, out = io.StringIO(), io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            rc = main(argv)
        except SystemExit as exc:
            rc = exc.code
    results.append(dict(rc=rc, err=err.getvalue(), out=out.getvalue(),
                        seconds=time.perf_counter() - t0))
print(json.dumps(dict(results=results, jax="jax" in sys.modules,
                      numpy="numpy" in sys.modules)))
"""


def test_help_and_argument_errors_do_not_import_jax():
    """`jaxclust --help` must be instant (< 0.5 s): it imports neither JAX nor NumPy, and
    neither does a usage error (the robust proxy for the wall time, which depends on the
    machine's load; the measured time is printed by -s)."""
    argvs = [["--help"], ["cluster", "--help"], ["demo", "--help"], ["cluster", "p.csv"],
             ["cluster", "p.csv", "--k", "3", "--scale", "zscore"]]
    res = _python(_RUNNER.format(prelude="", argvs=argvs))
    assert not res["jax"] and not res["numpy"]
    helps, errors = res["results"][:3], res["results"][3:]
    assert all(r["rc"] == 0 for r in helps) and all(r["rc"] == 2 for r in errors)
    main_help, cluster_help = helps[0]["out"], " ".join(helps[1]["out"].split())
    # the documented cache switch and exit statuses, the --scale choices and default
    assert "--no-cache" in cluster_help and "JAXCLUST_NO_CACHE=1" in main_help
    assert "141" in main_help
    assert "{standard,minmax,none}" in cluster_help and "the default" in cluster_help
    # the --out format stated in the help is the one written (see test_cli_cluster)
    assert "a header line 'label', then one label per input point" in cluster_help
    for r in errors:
        assert r["err"].count("error:") == 1 and "Traceback" not in r["err"]
    print(f"--help in-process: {helps[0]['seconds'] * 1e3:.0f} ms")


def test_missing_optional_packages_and_folder_give_one_line(tmp_path):
    pts = tmp_path / "p.csv"
    np.savetxt(pts, np.random.default_rng(0).normal(size=(12, 2)), delimiter=",")
    argvs = [["demo"],  # the data sets need scikit-learn
             ["demo", "--section", "ot", "--out", str(tmp_path / "figs")],  # matplotlib
             ["cluster", str(pts), "--k", "3", "--plot", str(tmp_path / "f.png")],
             ["cluster", str(pts), "--k", "3", "--out", str(tmp_path / "no" / "l.csv")],
             ["demo", "--section", "ot"]]  # its output pipe closes (run_demo stubbed)
    prelude = ("sys.modules['matplotlib'] = None; sys.modules['sklearn'] = None\n"
               "import jaxclust.demo as demo\n"
               "def closed(console, **kw): console.on_broken_pipe()  # what rich calls\n"
               "demo.run_demo = closed")
    res = _python(_RUNNER.format(prelude=prelude, argvs=argvs))
    *results, piped = res["results"]
    assert piped["rc"] == 141 and piped["err"] == "", piped
    expect = ['pip install "jaxclust[data]"', "pip install matplotlib",
              "pip install matplotlib", "does not exist; create it first"]
    for r, fix in zip(results, expect, strict=True):
        lines = r["err"].strip().splitlines()
        assert r["rc"] == 2 and len(lines) == 1 and fix in lines[0], r["err"]
        assert "bench" not in lines[0] and "Traceback" not in r["err"]
    # refused before anything heavy ran, and nothing was created
    assert not res["jax"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.csv"]


_PIPE_RUN = """
import json, sys
import numpy as np
import jaxclust.cli as cli
if {stub}:  # the stdout handling is under test, not the clustering: no compilation
    cli.cluster_points = lambda x, k, *a, **kw: np.arange(len(x)) % k
rc = cli.main({argv!r})
import jax
with open({report!r}, "w") as f:
    json.dump(dict(cache=jax.config.jax_compilation_cache_dir), f)
sys.exit(rc)
"""


def _closed_stdout_run(tmp_path, stub):
    """`jaxclust cluster ... | head -0`: stdout closed before the summary is printed."""
    x = np.random.default_rng(0).normal(size=(12, 2))
    x[6:] += 8.0
    pts, out, cache = tmp_path / "p.csv", tmp_path / "labels.csv", tmp_path / "cache"
    report = tmp_path / "report.json"
    np.savetxt(pts, x, delimiter=",")
    env = _env(XDG_CACHE_HOME=str(cache))
    env.pop("JAXCLUST_NO_CACHE", None)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    argv = ["cluster", str(pts), "--k", "2", "--out", str(out)]
    code = _PIPE_RUN.format(stub=stub, argv=argv, report=str(report))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=ROOT)
    proc.stdout.close()  # the reader is gone before anything was written
    err = proc.stderr.read().decode()
    rc = proc.wait(timeout=120)
    # 141 = 128 + SIGPIPE, what a shell reports for a command killed by SIGPIPE; stderr
    # empty: no traceback, no "Exception ignored ... BrokenPipeError" at exit
    assert rc == 141 and err == "", (rc, err)
    labels = out.read_text().splitlines()
    assert labels[0] == "label" and len(labels) == 13
    assert sorted(np.bincount([int(v) for v in labels[1:]])) == [6, 6]
    # the persistent compilation cache was turned on, under $XDG_CACHE_HOME/jaxclust
    assert json.loads(report.read_text())["cache"] == str(cache / "jaxclust" / "jax")
    return cache / "jaxclust" / "jax"


def test_closed_stdout_keeps_the_output_file_and_exits_quietly(tmp_path):
    _closed_stdout_run(tmp_path, stub=True)


@pytest.mark.slow  # compiles k-means in a fresh process (~3 s unloaded)
def test_closed_stdout_real_run_fills_the_compilation_cache(tmp_path):
    cache = _closed_stdout_run(tmp_path, stub=False)
    assert any(cache.iterdir())
