// Plotly figures in notebook outputs are drawn by inline scripts while the page is still being
// parsed, before the sidebars take their place, so they can come out wider than the text column.
// Once the page is laid out, fit every figure to the width it actually has.
window.addEventListener("load", function () {
  if (!window.Plotly) return;
  document.querySelectorAll(".js-plotly-plot").forEach(function (el) {
    window.Plotly.Plots.resize(el);
  });
});
