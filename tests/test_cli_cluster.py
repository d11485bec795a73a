"""`jaxclust cluster FILE`: CSV and NPY input, labels and figure output, and one test per
input error (exit status 2, the file, row and column named)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from jaxclust.cli import CLUSTER_METHODS, main


def _blobs(n=30):
    rng = np.random.default_rng(0)
    y = np.arange(n) % 3
    return (10.0 * np.eye(3, 2)[y] + 10.0 * (y == 2)[:, None] + rng.normal(size=(n, 2))), y


def test_csv_with_header_labels_and_plot(tmp_path, capsys):
    x, y = _blobs()
    f = tmp_path / "pts.csv"
    f.write_text("a,b\n" + "\n".join(f"{u},{v}" for u, v in x) + "\n\n")
    out, fig = tmp_path / "labels.csv", tmp_path / "fig.png"
    assert main(["cluster", str(f), "--k", "3", "--out", str(out), "--plot", str(fig)]) == 0
    text = capsys.readouterr().out
    assert "cluster sizes" in text and "inertia" in text
    labels = np.loadtxt(out, skiprows=1, dtype=int)
    assert out.read_text().startswith("label\n") and adjusted_rand_score(y, labels) == 1.0
    assert fig.stat().st_size > 5_000


def test_npy_with_the_sdp_method(tmp_path):
    x, y = _blobs()
    f = tmp_path / "pts.npy"
    np.save(f, x.astype(np.float32))
    out = tmp_path / "labels.csv"
    assert main(["cluster", str(f), "--k", "3", "--method", "sdp", "--out", str(out)]) == 0
    assert adjusted_rand_score(y, np.loadtxt(out, skiprows=1, dtype=int)) == 1.0
    assert set(CLUSTER_METHODS) >= {"kmeans", "gmm", "spectral", "kmedoids", "sdp", "sinkhorn"}


def _error(tmp_path, capsys, name, content, *extra, k="3"):
    f = tmp_path / name
    if isinstance(content, np.ndarray):
        np.save(f, content)
    elif content is not None:
        f.write_text(content)
    assert main(["cluster", str(f), "--k", k, *extra]) == 2
    return capsys.readouterr().err


def test_missing_file(tmp_path, capsys):
    assert "no such file" in _error(tmp_path, capsys, "nope.csv", None)


def test_unknown_extension(tmp_path, capsys):
    assert "unknown file type '.json'" in _error(tmp_path, capsys, "p.json", "[]")


def test_non_numeric_value_names_line_and_column(tmp_path, capsys):
    err = _error(tmp_path, capsys, "p.csv", "x,y\n1,2\n3,abc\n")
    assert "line 3, column 2" in err and "'abc' is not a number" in err


def test_ragged_rows(tmp_path, capsys):
    assert "line 2: 3 values" in _error(tmp_path, capsys, "p.csv", "1,2\n3,4,5\n")


def test_npy_not_2d(tmp_path, capsys):
    assert "expected a 2-D array" in _error(tmp_path, capsys, "p.npy", np.zeros(5))


def test_non_finite_value(tmp_path, capsys):
    err = _error(tmp_path, capsys, "p.csv", "1,2\n3,nan\n5,6\n")
    assert "non-finite value nan at point 2, feature 2" in err


def test_k_out_of_range(tmp_path, capsys):
    assert "--k must be in [2, n)" in _error(tmp_path, capsys, "p.csv", "1,2\n3,4\n", k="5")


def test_unknown_method_is_rejected_by_the_parser(tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["cluster", str(tmp_path / "p.csv"), "--k", "3", "--method", "dbscan"])
    assert exc.value.code == 2
