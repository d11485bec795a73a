"""The examples report progress: a printed line per phase and per epoch (issue 16: the deep
clustering example printed nothing for 3 minutes)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "examples"


def _dcd():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import deep_clustering_digits

    return deep_clustering_digits


def test_epoch_lines(capsys):
    dcd = _dcd()
    tick = dcd.EpochLines("head swav", steps=1000, log_every=250, enabled=True)
    assert tick({"acc": 0.91234}) == {"acc": 0.91234}  # the metrics pass through to fit
    tick({})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "head swav: 1000 steps (4 epochs of 250)"
    assert lines[1].startswith("  head swav: epoch 1/4, ACC 0.912, ")
    assert lines[2].startswith("  head swav: epoch 2/4, ") and lines[2].endswith(" s")
    quiet = dcd.EpochLines("x", steps=10, log_every=3, enabled=False)
    quiet({})
    assert capsys.readouterr().out == ""


@pytest.mark.slow
def test_deep_clustering_quick_run_prints_every_epoch(capsys):
    dcd = _dcd()
    cfg = dcd.QUICK  # 40 pre-training steps, 20 head steps, epochs of 20 steps
    dcd.run_seed(0, cfg, ("swav", "kmeans"), lines=True)
    out = capsys.readouterr().out
    assert "k-means on raw pixels: ACC" in out
    assert out.count("contrastive pre-training: epoch") == 2
    assert out.count("head swav: epoch 1/1, ACC") == 1 and "head kmeans: epoch 1/1" in out


def test_pyplot_without_matplotlib_names_the_fix(monkeypatch):
    """Issue 16 §3: point at matplotlib alone, never at the heavy bench extra."""
    from jaxclust.demo import _pyplot

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match="pip install matplotlib") as err:
        _pyplot()
    assert "bench" not in str(err.value)


def test_section_titles_fit_80_columns():
    """Each section's heading (a rich Rule) is printed whole at 80 columns."""
    from rich.console import Console
    from rich.rule import Rule

    from jaxclust.demo import SECTIONS

    for section in SECTIONS:
        console = Console(record=True, width=80)
        console.print(Rule(f"[bold]{section.title}"))
        assert section.title in console.export_text(), section.title
