/*
 * Search suggestions for any <input data-suggest-url="..."> inside a <form>: no dependencies.
 * Typing waits 150 ms, then asks the suggestion endpoint; ArrowDown/ArrowUp move through the
 * list, Enter picks, Escape closes; the mouse works too. A picked suggestion submits the form
 * with suggested=1, so the search it leads to is recorded as coming from a suggestion.
 * Without JavaScript the search box is a plain search box.
 */
(function () {
  "use strict";

  function setup(input) {
    var form = input.form;
    if (!form || input.dataset.suggestReady) return;
    input.dataset.suggestReady = "1";
    var url = input.dataset.suggestUrl;
    var list = document.createElement("ul");
    var listId = (input.id || "search") + "-suggestions";
    list.id = listId;
    list.className = "suggestions";
    list.setAttribute("role", "listbox");
    list.hidden = true;
    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-controls", listId);
    input.setAttribute("aria-expanded", "false");
    input.setAttribute("autocomplete", "off");
    input.insertAdjacentElement("afterend", list);
    var timer = null;
    var active = -1;
    var items = [];
    var lastAsked = "";

    function close() {
      list.hidden = true;
      active = -1;
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
    }

    function highlight(index) {
      items.forEach(function (item, i) {
        item.setAttribute("aria-selected", i === index ? "true" : "false");
      });
      active = index;
      if (index >= 0) input.setAttribute("aria-activedescendant", items[index].id);
    }

    function pick(text) {
      input.value = text;
      close();
      var flag = form.querySelector("input[name=suggested]");
      if (!flag) {
        flag = document.createElement("input");
        flag.type = "hidden";
        flag.name = "suggested";
        form.appendChild(flag);
      }
      flag.value = "1";
      form.submit();
    }

    function show(suggestions) {
      list.textContent = "";
      items = suggestions.map(function (suggestion, i) {
        var item = document.createElement("li");
        item.id = listId + "-" + i;
        item.setAttribute("role", "option");
        item.textContent = suggestion.text;  // text, never HTML
        if (suggestion.reason === "your earlier search" || suggestion.reason === "matches what you browse") {
          item.className = "suggestion-personal";
        }
        item.addEventListener("mousedown", function (event) {
          event.preventDefault();  // keep the focus in the input
          pick(suggestion.text);
        });
        list.appendChild(item);
        return item;
      });
      active = -1;
      list.hidden = items.length === 0;
      input.setAttribute("aria-expanded", items.length ? "true" : "false");
    }

    function ask() {
      var text = input.value;
      if (!text.trim()) { close(); return; }
      lastAsked = text;
      fetch(url + "?q=" + encodeURIComponent(text.slice(0, 100)), {
        credentials: "same-origin",
        headers: { "Accept": "application/json" }
      })
        .then(function (response) { return response.ok ? response.json() : { suggestions: [] }; })
        .then(function (data) { if (input.value === lastAsked) show(data.suggestions || []); })
        .catch(close);  // suggestions are a help: a failure only hides them
    }

    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(ask, 150);
    });
    input.addEventListener("keydown", function (event) {
      if (list.hidden) return;
      if (event.key === "ArrowDown") {
        event.preventDefault();
        highlight(Math.min(active + 1, items.length - 1));
      } else if (event.key === "ArrowUp") {
        event.preventDefault();
        highlight(Math.max(active - 1, -1));
      } else if (event.key === "Enter" && active >= 0) {
        event.preventDefault();
        pick(items[active].textContent);
      } else if (event.key === "Escape") {
        close();
      }
    });
    input.addEventListener("blur", function () { setTimeout(close, 100); });
  }

  function init() {
    document.querySelectorAll("input[data-suggest-url]").forEach(setup);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
