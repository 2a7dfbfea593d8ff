// Progressive enhancement only: copy buttons. Every page works without this file.
"use strict";
document.querySelectorAll("button.copy[data-copy]").forEach(function (b) {
  if (!navigator.clipboard) { return; }
  b.hidden = false;
  b.addEventListener("click", function () {
    var el = document.getElementById(b.getAttribute("data-copy"));
    if (!el) { return; }
    navigator.clipboard.writeText(el.textContent).then(function () {
      b.textContent = "Copied";
      setTimeout(function () { b.textContent = "Copy"; }, 1500);
    });
  });
});
