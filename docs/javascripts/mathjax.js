// MathJax 3 configuration for pymdownx.arithmatex (generic mode): arithmatex wraps inline maths in
// \( ... \) and display maths in \[ ... \] inside elements of class "arithmatex"; only those are typeset.
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

// mkdocs-material's instant navigation replaces the page without a reload: typeset each new page.
if (typeof document$ !== "undefined") {
  document$.subscribe(() => {
    if (!window.MathJax || !window.MathJax.typesetPromise) {
      return; // MathJax not loaded yet (it typesets the first page itself once loaded) or offline
    }
    MathJax.startup.output.clearCache();
    MathJax.typesetClear();
    MathJax.texReset();
    MathJax.typesetPromise();
  });
}
