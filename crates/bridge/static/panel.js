// Optional help for the template panel: live preview, list filter, and the value picker.
// The panel works without it (the preview is also rendered by the server on every load).
(function () {
  var preview = document.getElementById("preview-body");
  var bubble = document.getElementById("preview");
  var header = document.getElementById("preview-header");
  function refresh() {
    if (header && header.getAttribute("data-text")) {
      var value = document.querySelector('[name="header_text"]');
      header.textContent = header.getAttribute("data-text").replace(/\{\{\s*1\s*\}\}/g,
        value && value.value.trim() ? value.value.trim() : "[1]");
    }
    if (!preview || !bubble) return;
    preview.textContent = bubble.getAttribute("data-body").replace(/\{\{\s*(\d+)\s*\}\}/g, function (_, n) {
      var input = document.querySelector('[name="body_' + n + '"]');
      return input && input.value.trim() ? input.value.trim() : "[" + n + "]";
    });
  }
  var last = null;
  document.querySelectorAll("[data-preview]").forEach(function (input) {
    input.addEventListener("input", refresh);
    input.addEventListener("focus", function () { last = input; });
  });
  var insert = document.getElementById("insert");
  if (insert) {
    insert.addEventListener("click", function () {
      var picker = document.getElementById("picker");
      if (!last || !picker) return;
      last.value = last.value + picker.value;
      refresh();
      last.focus();
    });
  }
  var filter = document.querySelector("[data-filter]");
  if (filter) {
    filter.addEventListener("input", function () {
      var q = filter.value.trim().toLowerCase();
      document.querySelectorAll(filter.getAttribute("data-filter")).forEach(function (item) {
        item.hidden = q !== "" && item.getAttribute("data-search").toLowerCase().indexOf(q) < 0;
      });
    });
  }
})();
