// MathJax 3 configuration for pymdownx.arithmatex (generic mode): arithmatex wraps inline maths in
// \( ... \) and display maths in \[ ... \] inside elements of class "arithmatex"; only those are typeset.
// MathJax itself ships with the site (javascripts/mathjax/tex-chtml.js, loaded after this file; its fonts are
// found beside it), so nothing is fetched from another server.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
};

// mkdocs-material's instant navigation replaces the page without a reload: typeset each new page. The first
// emission is the page MathJax was loaded with, which MathJax typesets itself; clearing and typesetting it a
// second time while the first pass runs leaves the formulas blank (seen in Chromium), so it is skipped.
let firstPage = true;
if (typeof document$ !== "undefined") {
  document$.subscribe(() => {
    if (firstPage) {
      firstPage = false;
      return;
    }
    if (!window.MathJax || !window.MathJax.typesetPromise) {
      return; // MathJax not loaded yet: it typesets the page itself once loaded
    }
    MathJax.startup.output.clearCache();
    MathJax.typesetClear();
    MathJax.texReset();
    MathJax.typesetPromise();
  });
}
