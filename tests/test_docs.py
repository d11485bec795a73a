"""The documentation as users see it: guide code that runs, and a built site that renders.

1. Every ```python block of every page under docs/ parses (fast), and every block runs as
   written (slow: JAX compiles): the blocks of one page run in order in one namespace, in a
   fresh interpreter per page (a temporary working directory, ``MPLBACKEND=Agg``). A page
   can ask for extra environment variables in ``PAGE_ENV`` (the scaling guide runs on 8
   simulated CPU devices). Pages listed in ``KNOWN_BROKEN`` are expected failures (xfail,
   with the reason). A block preceded by the line
   ``<!-- docs-test: skip: <reason> -->`` is not run; each such block is reported as a
   skipped test with its reason (``pytest -rs``), never silently.
2. The built HTML (``site/``, from ``mkdocs build``; these tests skip when it is missing):
   the API pages show the docstring examples as highlighted code with ``>>>`` prompts and no
   ``>>>`` quoted as text; no TeX delimiter is left as text outside the math elements; the
   math renderer is served from the site itself (no CDN); every formula of the site renders
   with that KaTeX copy (run with node, skipped where node is missing).

``make docs`` builds the site and then runs this whole file, slow tests included.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SITE = ROOT / "site"

# Extra environment per page (relative to docs/). The scaling guide's sharded examples run on
# 8 simulated CPU devices, the setting its "Trying it on a CPU" section describes.
PAGE_ENV = {
    "guide/scaling.md": {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"},
}

# Pages whose code is known not to run yet, with the reason: reported as xfail (visible in
# every run, `-rx`), never skipped silently. Remove the entry with the fix.
KNOWN_BROKEN: dict[str, str] = {}

_FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)```python[ \t]*$")
_SKIP = re.compile(r"^\s*<!--\s*docs-test:\s*skip:\s*(?P<reason>.+?)\s*-->\s*$")


def _blocks(page: Path) -> list[dict]:
    """The ```python blocks of a page: code (dedented), first line number, skip reason."""
    lines = page.read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(lines):
        m = _FENCE_OPEN.match(lines[i])
        if not m:
            i += 1
            continue
        indent, start = m["indent"], i + 1
        j = start
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        if j == len(lines):
            raise AssertionError(f"{page.relative_to(ROOT)}:{i + 1}: unclosed ```python block")
        body = [ln[len(indent):] if ln.startswith(indent) else ln for ln in lines[start:j]]
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        skip = _SKIP.match(lines[k]) if k >= 0 else None
        out.append({"line": start + 1, "code": textwrap.dedent("\n".join(body)),
                    "skip": skip["reason"] if skip else None})
        i = j + 1
    return out


PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
CODE_PAGES = [p for p in PAGES if _blocks(DOCS / p)]
SKIPPED = [(p, b["line"], b["skip"]) for p in CODE_PAGES for b in _blocks(DOCS / p) if b["skip"]]


def test_guide_pages_have_code():
    """The extraction finds the guide's code (a broken fence regex would find nothing)."""
    for page in ("index.md", "guide/ot.md", "guide/cluster.md", "guide/ood.md",
                 "guide/scaling.md"):
        assert page in CODE_PAGES, page


@pytest.mark.parametrize("page", CODE_PAGES)
def test_code_blocks_parse(page):
    for block in _blocks(DOCS / page):
        try:
            ast.parse("\n" * (block["line"] - 1) + block["code"], filename=f"docs/{page}")
        except SyntaxError as err:
            pytest.fail(f"docs/{page}:{err.lineno}: {err.msg}")


_RUNNER = r"""
import json, sys, time
ns = {"__name__": "__main__"}
for block in json.load(sys.stdin):
    t0 = time.perf_counter()
    # leading newlines: a traceback names the page and the line of the page
    exec(compile("\n" * (block["line"] - 1) + block["code"], block["file"], "exec"), ns)
    print(f"{block['file']}:{block['line']}: ran in {time.perf_counter() - t0:.1f} s",
          file=sys.stderr)
"""


@pytest.mark.slow
@pytest.mark.parametrize("page", [
    pytest.param(p, marks=pytest.mark.xfail(reason=KNOWN_BROKEN[p], strict=False))
    if p in KNOWN_BROKEN else p for p in CODE_PAGES])
def test_code_blocks_run(page, tmp_path):
    blocks = [dict(b, file=str(DOCS / page)) for b in _blocks(DOCS / page) if not b["skip"]]
    env = dict(os.environ, MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    for name, value in PAGE_ENV.get(page, {}).items():
        env[name] = " ".join([env.get(name, ""), value]).strip()  # conftest's XLA flags kept
    proc = subprocess.run([sys.executable, "-c", _RUNNER], input=json.dumps(blocks),
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"a code block of docs/{page} failed:\n{proc.stderr[-6000:]}")


@pytest.mark.parametrize("page, line, reason", SKIPPED,
                         ids=[f"{p}:{line}" for p, line, _ in SKIPPED])
def test_code_blocks_not_run(page, line, reason):
    """One visible skip per block marked not-run, with the page's stated reason."""
    pytest.skip(f"docs/{page}:{line} is not run: {reason}")


# --- the built site -------------------------------------------------------------------------

needs_site = pytest.mark.skipif(not (SITE / "index.html").exists(),
                                reason="site/ not built (run `make docs`)")


class _Text(HTMLParser):
    """Text outside code, scripts and math elements; the TeX of the math elements."""

    _VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
             "source", "track", "wbr", "path"}

    def __init__(self):
        super().__init__()
        self.stack: list[str | None] = []  # per open element: "skip", "math" or None
        self.text: list[str] = []
        self.math: list[str] = []
        self._buf: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in self._VOID:
            return
        classes = (dict(attrs).get("class") or "").split()
        if "arithmatex" in classes and "math" not in self.stack:
            self.stack.append("math")
            self._buf = []
        elif tag in ("code", "pre", "script", "style", "textarea"):
            self.stack.append("skip")
        else:
            self.stack.append(None)

    def handle_endtag(self, tag):
        if tag in self._VOID or not self.stack:
            return
        if self.stack.pop() == "math":
            self.math.append("".join(self._buf))

    def handle_data(self, data):
        if "math" in self.stack:
            self._buf.append(data)
        elif "skip" not in self.stack:
            self.text.append(data)


def _parse(page: Path) -> _Text:
    parser = _Text()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def _html_pages() -> list[Path]:
    return sorted(SITE.rglob("*.html"))


@needs_site
def test_api_examples_are_highlighted_code():
    api = sorted((SITE / "api").glob("*/index.html"))
    assert len(api) >= 10, "the API reference pages are missing from site/"
    n_examples = 0
    for page in api:
        html = page.read_text(encoding="utf-8")
        # pygments marks a prompt `>>> ` as a generic prompt inside a highlighted block
        n_examples += len(re.findall(r'<code><span class="gp">&gt;&gt;&gt; </span>', html))
        quoted = [t for t in _parse(page).text if "&gt;&gt;&gt;" in t or ">>>" in t]
        assert not quoted, f"{page.relative_to(SITE)}: `>>>` rendered as text: {quoted[:2]}"
        assert "<blockquote>" not in html, f"{page.relative_to(SITE)}: a quoted block"
    n_source = sum(len(re.findall(r"^\s*Examples?:\s*$", p.read_text(encoding="utf-8"), re.M))
                   for p in (ROOT / "jaxclust").rglob("*.py"))
    # every docstring example section is on some API page (a few may be in private modules)
    assert n_examples >= 0.9 * n_source, (n_examples, n_source)


_TEX_LEFT = re.compile(r"\$\$|\\\(|\\\[|\\begin\{|\\frac|\\sum|\\mathbb|\$[^\s$][^$]*\$")


@needs_site
def test_no_raw_tex_in_rendered_text():
    raw = []
    for page in _html_pages():
        for text in _parse(page).text:
            if _TEX_LEFT.search(text):
                raw.append(f"{page.relative_to(SITE)}: {text.strip()[:100]!r}")
    assert not raw, "TeX left as text (not math):\n" + "\n".join(raw[:20])


@needs_site
def test_no_stray_dollar_beside_rendered_math():
    """A ``$$ ... $$`` block inside a paragraph of a docstring renders as inline math with a
    lone ``$`` on each side (seen on the semi_supervised_gmm API page)."""
    stray = []
    for page in _html_pages():
        html = page.read_text(encoding="utf-8")
        for m in re.finditer(r'\$<span class="arithmatex">', html):
            stray.append(f"{page.relative_to(SITE)}: {html[m.start():m.start() + 80]!r}")
    assert not stray, "a '$' left beside rendered math:\n" + "\n".join(stray[:20])


@needs_site
def test_math_renderer_is_served_locally():
    index = (SITE / "index.html").read_text(encoding="utf-8")
    scripts = re.findall(r'<script[^>]+src="([^"]+)"', index)
    styles = re.findall(r'<link[^>]+href="([^"]+\.css)"', index)
    assert any(s.endswith("katex/katex.min.js") for s in scripts), scripts
    assert any(s.endswith("katex/katex.min.css") for s in styles), styles
    for url in scripts + styles:
        assert "://" not in url and not url.startswith("//"), f"fetched from elsewhere: {url}"
        assert (SITE / url.split("?")[0]).exists(), url
    css = (SITE / "javascripts/katex/katex.min.css").read_text(encoding="utf-8")
    fonts = set(re.findall(r"url\((fonts/[^)]+\.woff2)\)", css))
    assert fonts, "no woff2 font in katex.min.css"
    missing = [f for f in fonts if not (SITE / "javascripts/katex" / f).exists()]
    assert not missing, missing


@needs_site
@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_every_formula_renders_with_the_bundled_katex(tmp_path):
    formulas = [(str(p.relative_to(SITE)), tex) for p in _html_pages() for tex in _parse(p).math]
    assert len(formulas) > 100
    (tmp_path / "formulas.json").write_text(json.dumps(formulas), encoding="utf-8")
    script = r"""
const katex = require(process.argv[1]);
const formulas = JSON.parse(require("fs").readFileSync(process.argv[2], "utf8"));
const bad = [];
for (const [page, raw] of formulas) {
  let tex = raw.trim(), display = false;
  if (tex.startsWith("\\(")) tex = tex.slice(2, -2);
  else if (tex.startsWith("\\[")) { tex = tex.slice(2, -2); display = true; }
  try { katex.renderToString(tex, { displayMode: display, throwOnError: true }); }
  catch (e) { bad.push(page + ": " + raw.slice(0, 80) + " -> " + e.message.slice(0, 120)); }
}
console.log(JSON.stringify(bad));
"""
    proc = subprocess.run(
        ["node", "-e", script, str(SITE / "javascripts/katex/katex.min.js"),
         str(tmp_path / "formulas.json")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    bad = json.loads(proc.stdout)
    assert not bad, f"{len(bad)} of {len(formulas)} formulas fail in KaTeX:\n" + "\n".join(bad[:20])
