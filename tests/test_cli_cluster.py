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


def test_csv_with_header_labels_and_plot(tmp_path, capsys, monkeypatch):
    import jaxclust.demo as demo

    pyplot, figures = demo._pyplot(), []

    class Recorder:  # pyplot, keeping the figures it is asked to close
        def __getattr__(self, name):
            return getattr(pyplot, name)

        def close(self, fig):
            figures.append(fig)

    monkeypatch.setattr(demo, "_pyplot", Recorder)
    x, y = _blobs()
    f = tmp_path / "pts.csv"
    f.write_text("a,b\n" + "\n".join(f"{u},{v}" for u, v in x) + "\n\n")
    out, fig = tmp_path / "labels.csv", tmp_path / "fig.png"
    assert main(["cluster", str(f), "--k", "3", "--out", str(out), "--plot", str(fig)]) == 0
    text = capsys.readouterr().out
    assert "cluster sizes" in text and "inertia" in text
    # the format the help states: a header line 'label', then one label per input point
    lines = out.read_text().splitlines()
    assert lines[0] == "label" and len(lines) == len(x) + 1
    assert adjusted_rand_score(y, np.array(lines[1:], dtype=int)) == 1.0
    assert fig.stat().st_size > 5_000
    (ax,) = figures[0].axes
    assert ax.get_title().startswith("kmeans, k = 3")
    assert ax.get_xlabel() == "feature 1 (standardised), centred"
    assert ax.get_ylabel() == "feature 2 (standardised), centred"
    pyplot.close(figures[0])


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


# ------------------------------------------------------------------------------------------
# issue 14 (1.8, the CLI): no data lost or overwritten unasked, one line per error, output
# paths checked before the clustering runs (a failing output no longer loses the result)


def _points(tmp_path, name="pts.csv", n=12):
    x, _ = _blobs(n)
    f = tmp_path / name
    if name.endswith(".npy"):
        np.save(f, x.astype(np.float32))
    else:
        f.write_text("\n".join(f"{u},{v}" for u, v in x) + "\n")
    return f


def _one_line_error(capsys, rc, expect):
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc != 0 and len(lines) == 1 and "Traceback" not in err, err
    assert expect in lines[0], lines[0]
    return lines[0]


def test_out_equal_to_the_input_is_refused_even_with_force(tmp_path, capsys):
    f = _points(tmp_path)
    before = f.read_bytes()
    for extra in ([], ["--force"]):
        rc = main(["cluster", str(f), "--k", "3", "--out", str(f), *extra])
        _one_line_error(capsys, rc, "is the input file")
        assert f.read_bytes() == before
    # the same file through another spelling of its path
    rc = main(["cluster", str(f), "--k", "3", "--out", str(tmp_path / "." / f.name)])
    _one_line_error(capsys, rc, "is the input file")
    assert f.read_bytes() == before


def test_existing_out_is_kept_unless_force(tmp_path, capsys):
    f, out = _points(tmp_path), tmp_path / "labels.csv"
    out.write_text("precious\n")
    rc = main(["cluster", str(f), "--k", "3", "--out", str(out)])
    _one_line_error(capsys, rc, "--force")
    assert out.read_text() == "precious\n"
    assert main(["cluster", str(f), "--k", "3", "--out", str(out), "--force"]) == 0
    assert out.read_text().startswith("label\n")


def test_output_paths_are_checked_before_clustering(tmp_path, capsys, monkeypatch):
    import jaxclust.cli as cli

    def never(*a, **k):
        raise AssertionError("clustered although the output path is bad")

    monkeypatch.setattr(cli, "cluster_points", never)
    f = _points(tmp_path)
    cases = [(["--out", str(tmp_path / "no" / "l.csv")], "does not exist"),
             (["--out", str(tmp_path)], "is a directory"),
             (["--plot", str(tmp_path / "no" / "f.png")], "does not exist"),
             (["--plot", str(tmp_path)], "is a directory"),
             (["--out", str(tmp_path / "a.csv"), "--plot", str(tmp_path / "a.csv")], "same file")]
    for extra, expect in cases:
        _one_line_error(capsys, main(["cluster", str(f), "--k", "3", *extra]), expect)


@pytest.mark.parametrize("scale", [3e38 / 4, 1e300])
def test_values_that_overflow_float32_are_refused(tmp_path, capsys, scale):
    # 3e38 used to hang (labels 2**31 - 1 fed to a count), 1e300 to print a traceback
    x, y = _blobs(12)
    f = tmp_path / "big.csv"
    f.write_text("\n".join(f"{float(u * scale)!r},{v}" for u, v in x) + "\n")
    rc = main(["cluster", str(f), "--k", "3", "--scale", "none"])
    _one_line_error(capsys, rc, "too large for float32")
    # standardised (the default) they are ordinary numbers, without overflow on the way
    out = tmp_path / "l.csv"
    assert main(["cluster", str(f), "--k", "3", "--out", str(out)]) == 0
    assert adjusted_rand_score(y, np.loadtxt(out, skiprows=1, dtype=int)) == 1.0


def test_zero_features_is_an_error(tmp_path, capsys):
    f = tmp_path / "p.npy"
    np.save(f, np.zeros((12, 0)))
    _one_line_error(capsys, main(["cluster", str(f), "--k", "3"]), "0 features")


def test_constant_data_is_an_input_error(tmp_path, capsys):
    f = tmp_path / "c.csv"
    f.write_text("1,2\n" * 12)
    rc = main(["cluster", str(f), "--k", "3", "--method", "sinkhorn"])
    _one_line_error(capsys, rc, "distinct point")


def test_huge_seed_is_rejected_by_the_parser(tmp_path, capsys):
    f = _points(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["cluster", str(f), "--k", "3", "--seed", str(2**70)])
    assert exc.value.code == 2 and "--seed" in capsys.readouterr().err


def test_spectral_on_few_points(tmp_path, capsys):
    # fewer points than the default 10 neighbours: the kNN graph is capped at n - 1
    f = _points(tmp_path, n=6)
    assert main(["cluster", str(f), "--k", "2", "--method", "spectral"]) == 0


def test_pickled_npy_is_not_loaded(tmp_path, capsys):
    f = tmp_path / "p.npy"
    np.save(f, np.array([{"a": 1}] * 12, dtype=object), allow_pickle=True)
    _one_line_error(capsys, main(["cluster", str(f), "--k", "3"]), "not a readable .npy")


def test_directory_as_input(tmp_path, capsys):
    _one_line_error(capsys, main(["cluster", str(tmp_path), "--k", "3"]), "is a directory")
