"""The `jaxclust` command: --version and the demo (OT section), with and without figures."""

from __future__ import annotations

import pytest

import jaxclust
from jaxclust.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"jaxclust {jaxclust.__version__}"


def test_demo_command_runs_the_chosen_sections(tmp_path, capsys, monkeypatch):
    # the wiring of `jaxclust demo` (parsing, sections, output folder) on a stub section;
    # the real sections run in the slow test below and in tests/test_demo_*.py
    import types

    import jaxclust.demo as demo

    ran = []
    stub = types.ModuleType("stub_section")
    stub.run = lambda ctx: ran.append((ctx.seed, ctx.out))
    monkeypatch.setitem(__import__("sys").modules, "stub_section", stub)
    monkeypatch.setattr(demo, "SECTIONS", (demo.Section("ot", "stub", "stub_section"),))
    assert main(["demo", "--section", "ot", "--seed", "3", "--out", str(tmp_path)]) == 0
    assert ran == [(3, tmp_path)]
    assert "section 'ot' took" in capsys.readouterr().out


@pytest.mark.slow  # the full OT section (~7 s)
def test_demo_ot_section_prints_table_and_saves_figures(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert main(["demo", "--section", "ot", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for word in ("balanced", "unbalanced", "partial"):
        assert word in out
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs, "the demo saved no figure"
    assert all((tmp_path / p).stat().st_size > 1000 for p in pngs)


def test_unknown_section_is_rejected(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--section", "nope"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
