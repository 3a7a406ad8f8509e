// Threadsite's few behaviours beyond htmx: copy buttons, the confirmation dialog, ticking rows for a bulk
// deletion, sign-in expiry and errors htmx does not swap in. Everything works without this file; it only
// makes it smoother.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function showProblem(text) {
    var box = document.getElementById("problem");
    if (!box) return;
    box.textContent = text;
    box.hidden = false;
    clearTimeout(showProblem.timer);
    showProblem.timer = setTimeout(function () { box.hidden = true; }, 8000);
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain-http deployments have no Clipboard API.
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } finally { area.remove(); }
    return Promise.resolve();
  }

  document.addEventListener("click", function (event) {
    var copy = event.target.closest("[data-copy]");
    if (copy) {
      copyText(copy.getAttribute("data-copy")).then(function () {
        var label = copy.textContent;
        copy.textContent = "Copied";
        copy.classList.add("copied");
        setTimeout(function () { copy.textContent = label; copy.classList.remove("copied"); }, 1500);
      });
      return;
    }
    var closer = event.target.closest("[data-close-dialog]");
    var dialog = closer && closer.closest("dialog");
    if (dialog) {
      event.preventDefault();
      dialog.close();
    }
  });

  // A confirmation fragment arrives as a <dialog data-modal>: open it as a modal, drop it when closed.
  document.addEventListener("htmx:load", function (event) {
    var root = event.detail.elt;
    var dialogs = root.matches && root.matches("dialog[data-modal]") ? [root] : root.querySelectorAll ? root.querySelectorAll("dialog[data-modal]") : [];
    Array.prototype.forEach.call(dialogs, function (dialog) {
      if (dialog.open) return;
      dialog.addEventListener("close", function () { dialog.remove(); });
      dialog.showModal();
    });
  });

  // --- Answers with an error status --------------------------------------------------------------------
  // A fragment (a form with its errors, a panel saying what the API answered) goes where it was asked
  // for, whatever the status; a whole page (a 403, a crash) never replaces the page a person is on: its
  // message is shown above it instead. Full pages are the ones that start with a doctype.
  function isFragment(xhr) {
    var type = xhr.getResponseHeader("Content-Type") || "";
    return type.indexOf("text/html") === 0 && !/^\s*<!doctype/i.test(xhr.responseText || "");
  }

  function problemOf(xhr) {
    // The error pages put what went wrong in [data-problem]; anything else gets the status alone.
    if ((xhr.getResponseHeader("Content-Type") || "").indexOf("text/html") === 0) {
      var found = new DOMParser().parseFromString(xhr.responseText || "", "text/html").querySelector("[data-problem]");
      if (found && found.textContent.trim()) return found.textContent.trim().replace(/\s+/g, " ");
    }
    return "The server answered " + xhr.status + ". Try again, or reload the page.";
  }

  // In DEBUG, django-htmx's handler puts any 400/403/404/500 answer in place of the whole document, which
  // suits Django's debug pages but not a fragment, nor one of Threadsite's error pages (they say what
  // went wrong in [data-problem]). Caught on the way down, the event never reaches that handler; htmx
  // itself goes on (stopping propagation does not cancel the event).
  window.addEventListener("htmx:beforeOnLoad", function (event) {
    var xhr = event.detail.xhr;
    if (xhr.status >= 400 && (isFragment(xhr) || /\sdata-problem[\s>]/.test(xhr.responseText || ""))) {
      event.stopPropagation();
    }
  }, true);

  document.addEventListener("htmx:beforeSwap", function (event) {
    // The session ended: the request was redirected to the sign-in page. Reload to sign in and come back.
    var xhr = event.detail.xhr;
    var loginPath = document.body.getAttribute("data-login-path");
    if (loginPath && xhr.responseURL && new URL(xhr.responseURL).pathname === loginPath) {
      event.detail.shouldSwap = false;
      window.location.reload();
      return;
    }
    if (xhr.status >= 400) {
      var fragment = isFragment(xhr);
      event.detail.shouldSwap = fragment;
      event.detail.isError = !fragment;  // htmx:responseError, below, reports it
    }
  });

  // --- Ticking rows of the thread list for a bulk deletion ---------------------------------------------
  // The ticks live in the table, which htmx replaces whenever a filter, the sort, the search or the page
  // changes: the new table arrives with nothing ticked, so a row that a new filter hides is never deleted
  // unknowingly. The ticks are also cleared the moment such a request leaves, not only when it returns.
  function selectionBoxes() {
    return Array.prototype.slice.call(document.querySelectorAll('input[name="ids"][form="selection"]'));
  }

  // "Select all N matching this filter": the selection becomes the filters (all=1) instead of the ticks,
  // whose boxes are disabled so that no ids= travel with it, until "Clear" or a change of the table.
  function allInput() { return document.querySelector("[data-select-all-input]"); }
  function allSelected() { var input = allInput(); return Boolean(input && !input.disabled); }

  function setAll(on) {
    var input = allInput();
    if (!input) return;
    input.disabled = !on;
    selectionBoxes().forEach(function (box) { box.checked = on || box.checked; box.disabled = on; });
    var page = document.querySelector("[data-select-page]");
    if (page) page.disabled = on;
    updateSelection();
  }

  function updateSelection() {
    var bar = document.querySelector("[data-selection-bar]");
    if (!bar) return;
    var boxes = selectionBoxes();
    var ticked = boxes.filter(function (box) { return box.checked; }).length;
    var all = allSelected();
    bar.hidden = ticked === 0 && !all;
    bar.querySelector("[data-selected-count]").textContent = String(ticked);
    bar.querySelector("[data-selection-some]").hidden = all;
    bar.querySelector("[data-selection-all]").hidden = !all;
    bar.querySelector("[data-select-all]").hidden = all;
    if (all) return;
    var page = document.querySelector("[data-select-page]");
    if (page) {
      page.checked = ticked > 0 && ticked === boxes.length;
      page.indeterminate = ticked > 0 && ticked < boxes.length;
      page.disabled = boxes.length === 0;
    }
  }

  function clearSelection() {
    var input = allInput();
    if (input) input.disabled = true;
    selectionBoxes().forEach(function (box) { box.checked = false; box.disabled = false; });
    var page = document.querySelector("[data-select-page]");
    if (page) page.checked = false;
    updateSelection();
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches("[data-select-page]")) {
      selectionBoxes().forEach(function (box) { box.checked = target.checked; });
      updateSelection();
    } else if (target.matches('input[name="ids"][form="selection"]')) {
      updateSelection();
    }
  });
  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-clear-selection]")) clearSelection();
    if (event.target.closest("[data-select-all]") && allInput()) {
      event.preventDefault();
      setAll(true);
    }
  });
  document.addEventListener("htmx:beforeRequest", function (event) {
    var target = event.detail.target;
    if (target && target.id === "thread-table") clearSelection();
  });
  document.addEventListener("htmx:load", updateSelection);
  window.addEventListener("pageshow", updateSelection);

  document.addEventListener("htmx:responseError", function (event) {
    showProblem(problemOf(event.detail.xhr));
  });
  document.addEventListener("htmx:sendError", function () {
    showProblem("Threadsite could not be reached. Check the connection and try again.");
  });
})();
