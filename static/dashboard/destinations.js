// The destination catalog: filter the cards by search words and by category, in the page. Without this
// script every card is simply shown.
(function () {
  "use strict";

  var search = document.getElementById("catalog-search");
  var chips = document.querySelector(".catalog-filters .chips");
  var cards = Array.prototype.slice.call(document.querySelectorAll(".catalog-card"));
  var empty = document.querySelector("[data-testid=catalog-empty]");
  if (!search || !chips) return;
  var category = "";

  function apply() {
    var words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    var shown = 0;
    cards.forEach(function (card) {
      var text = card.dataset.search;
      var match = (!category || card.dataset.category === category) &&
        words.every(function (word) { return text.indexOf(word) !== -1; });
      card.hidden = !match;
      if (match) shown += 1;
    });
    empty.hidden = shown > 0;
  }

  chips.querySelectorAll(".chip").forEach(function (chip) {
    chip.addEventListener("click", function () {
      category = chip.dataset.category;
      chips.querySelectorAll(".chip").forEach(function (other) {
        other.setAttribute("aria-pressed", other === chip ? "true" : "false");
      });
      apply();
    });
  });
  search.addEventListener("input", apply);
  search.hidden = false;
  chips.hidden = false;
  search.focus();
  apply();
})();
