// Carousels say when they scroll: a card cut at an edge fades out there (classes more-left,
// more-right), so a shopper sees there is more. Without this script the row still scrolls.
(function () {
  var SLACK = 16; // px: the row's own padding and snapping are not "more"
  function mark(row) {
    var end = row.scrollWidth - row.clientWidth;
    row.classList.toggle("more-left", row.scrollLeft > SLACK);
    row.classList.toggle("more-right", row.scrollLeft < end - SLACK);
  }
  function markAll() {
    document.querySelectorAll(".carousel").forEach(mark);
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".carousel").forEach(function (row) {
      row.addEventListener("scroll", function () { mark(row); }, { passive: true });
    });
    markAll();
  });
  window.addEventListener("resize", markAll);
})();
