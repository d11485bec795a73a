"""Bad-input fuzzer of the ``jaxclust cluster`` command (issue 14, sections 1.8 and 4),
in-process (``main([...])``, no subprocess: the clustering compiles once per session).

Property, for every input: ``main`` returns 0 and writes one label per point, or returns
a non-zero status after printing exactly one line ``jaxclust cluster: error: ...`` (no
traceback); the input file and any existing output are byte-for-byte unchanged unless
``--force`` was given for that output.

The hypothesis test (derandomized, generate phase only, bounded examples) corrupts a valid
12 x 2 CSV with a drawn list of edits: NaN / Inf / empty / non-numeric / 1e300 / 3e38
cells, a dropped cell (ragged row), a header, blank lines, all rows removed; ``--k`` is
drawn in [-1, 14]. The named inputs (empty file, header only, a directory, a missing file,
k > rows, a pickled ``.npy``, ``--out`` onto the input, an existing ``--out``) are fixed
cases. Valid inputs keep the 12 x 2 shape (and k in {2, 3}), so the clustering compiles a
couple of times per session at most.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

from jaxclust.cli import main

_SETTINGS = settings(derandomize=True, database=None, max_examples=30, deadline=None,
                     phases=[Phase.generate], suppress_health_check=list(HealthCheck),
                     print_blob=False)

_X = np.round(np.random.default_rng(0).normal(size=(12, 2)) * 3, 3)
_X[4:8] += 10.0
_BAD_CELLS = ["nan", "inf", "-inf", "", "abc", "1e300", "3e38", "1,2", "0x10", "--1"]


def _run(capsys, argv, files=()):
    """Run ``main`` and check the property; returns (status, stderr line or None)."""
    before = {f: f.read_bytes() for f in files if f.is_file()}
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse: usage + one error line, status 2
        rc = exc.code
        err = capsys.readouterr().err
        assert rc == 2 and "error:" in err and "Traceback" not in err, err
        return rc, None
    captured = capsys.readouterr()
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    if rc == 0:
        assert not lines, captured.err
    else:
        assert len(lines) == 1 and lines[0].startswith("jaxclust cluster: error: "), (
            captured.err)
        assert "Traceback" not in captured.err
    for f, data in before.items():
        if "--force" not in argv or str(f) == argv[1]:
            assert f.read_bytes() == data, f"{f} was changed"
    return rc, (lines[0] if rc else None)


def _csv(rows):
    return "\n".join(",".join(r) for r in rows) + "\n"


@_SETTINGS
@given(data=st.data())
def test_cluster_command_on_corrupted_csv(tmp_path_factory, capsys, data):
    tmp = tmp_path_factory.mktemp("cli")
    rows = [[repr(float(v)) for v in r] for r in _X]
    edits = data.draw(st.lists(st.sampled_from(["cell", "drop", "header", "blank", "clear",
                                                "extra"]), max_size=3), label="edits")
    for e in edits:
        i, j = data.draw(st.integers(0, 11), label="row"), data.draw(st.integers(0, 1))
        if not rows:
            break
        i %= len(rows)
        if e == "cell":
            rows[i][j % len(rows[i])] = data.draw(st.sampled_from(_BAD_CELLS), label="cell")
        elif e == "drop" and len(rows[i]) > 1:
            rows[i].pop()
        elif e == "extra":
            rows[i].append("1.0")
        elif e == "header":
            rows.insert(0, ["a", "b"])
        elif e == "blank":
            rows.insert(i, [""])
        elif e == "clear":
            rows = rows[:1] if data.draw(st.booleans()) else []
    f = tmp / "pts.csv"
    f.write_text(_csv(rows) if rows else "")
    k = data.draw(st.sampled_from([-1, 0, 1, 2, 3, 12, 14]), label="k")
    out = tmp / "labels.csv"
    if data.draw(st.booleans(), label="existing out"):
        out.write_text("keep me\n")
    rc, _ = _run(capsys, ["cluster", str(f), "--k", str(k), "--out", str(out)], [f, out])
    if rc == 0:
        labels = np.loadtxt(out, skiprows=1, dtype=int)
        assert labels.shape == (12,) and labels.min() >= 0 and labels.max() < k


def test_named_bad_inputs(tmp_path, capsys):
    f = tmp_path / "ok.csv"
    f.write_text(_csv([[repr(float(v)) for v in r] for r in _X]))
    empty, header = tmp_path / "empty.csv", tmp_path / "header.csv"
    empty.write_text("")
    header.write_text("a,b\n")
    pick = tmp_path / "p.npy"
    np.save(pick, np.array([{"a": 1}] * 12, dtype=object), allow_pickle=True)
    out = tmp_path / "labels.csv"
    out.write_text("keep me\n")
    cases = [
        ([str(empty), "--k", "2"], "no data rows"),
        ([str(header), "--k", "2"], "no data rows"),
        ([str(tmp_path), "--k", "2"], "is a directory"),
        ([str(tmp_path / "missing.csv"), "--k", "2"], "no such file"),
        ([str(f), "--k", "13"], "--k must be in [2, n)"),
        ([str(pick), "--k", "2"], "not a readable .npy"),
        ([str(f), "--k", "2", "--out", str(f), "--force"], "is the input file"),
        ([str(f), "--k", "2", "--out", str(out)], "already exists"),
        ([str(f), "--k", "2", "--plot", str(out)], "already exists"),
    ]
    for argv, expect in cases:
        rc, line = _run(capsys, ["cluster", *argv], [f, out, pick])
        assert rc == 2 and expect in line, (argv, line)
    assert out.read_text() == "keep me\n"


@pytest.mark.parametrize("content", [np.zeros((12, 0)), np.zeros((0, 2)), np.zeros(12),
                                     np.full((12, 2), 3e38, np.float32),
                                     np.array([[1.0, 2.0]] * 12)])
def test_bad_npy_arrays(tmp_path, capsys, content):
    f = tmp_path / "x.npy"
    np.save(f, content)
    rc, line = _run(capsys, ["cluster", str(f), "--k", "2"], [f])
    assert rc == 2, line
