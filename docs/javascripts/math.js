// Render the math that pymdownx.arithmatex (generic mode) leaves in the page with the
// KaTeX copy shipped in docs/javascripts/katex/ (no CDN: the site renders math offline).
// arithmatex wraps inline math as <span class="arithmatex">\(...\)</span> and display math
// as <div class="arithmatex">\[...\]</div> (or a bare \begin{env}...\end{env}).
function renderArithmatex(root) {
  root.querySelectorAll(".arithmatex").forEach((el) => {
    let tex = el.textContent.trim();
    let display = el.tagName === "DIV";
    if (tex.startsWith("\\(") && tex.endsWith("\\)")) {
      tex = tex.slice(2, -2);
      display = false;
    } else if (tex.startsWith("\\[") && tex.endsWith("\\]")) {
      tex = tex.slice(2, -2);
      display = true;
    }
    katex.render(tex, el, { displayMode: display, throwOnError: false });
  });
}

if (typeof document$ !== "undefined") {
  document$.subscribe(({ body }) => renderArithmatex(body)); // Material's instant loading
} else {
  document.addEventListener("DOMContentLoaded", () => renderArithmatex(document.body));
}
