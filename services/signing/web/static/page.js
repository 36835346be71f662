// Groundswell petition page: sign in place, show the thank-you state, keep the count live.
// Without this script the page still works: the form posts and a thank-you page follows.
(function () {
  "use strict";
  var root = document.querySelector("[data-petition]");
  if (!root) return;
  var petition = root.getAttribute("data-petition");
  var countUrl = "/petitions/" + petition + "/count";
  var shown = -1;

  function fmt(n) { return n.toLocaleString("en-US"); }

  function show(state) {
    if (typeof state.count !== "number" || state.count < shown) return; // never step backwards
    shown = state.count;
    document.querySelectorAll("[data-count]").forEach(function (el) { el.textContent = fmt(state.count); });
    document.querySelectorAll("[data-goal]").forEach(function (el) { el.textContent = fmt(state.goal); });
    document.querySelectorAll("[data-bar]").forEach(function (el) {
      el.max = state.goal; el.value = Math.min(state.count, state.goal);
      el.textContent = Math.min(100, Math.round(100 * state.count / state.goal)) + "%";
    });
    document.querySelectorAll("[data-progress]").forEach(function (el) { el.hidden = false; });
  }

  function refresh() {
    return fetch(countUrl, { cache: "no-store" }).then(function (r) { return r.ok ? r.json() : null; })
      .then(function (state) { if (state) show(state); }).catch(function () {});
  }

  // Live count: Server-Sent Events from the counter; polling when SSE is missing or gives up.
  var polling = null;
  function poll() { if (!polling) { refresh(); polling = setInterval(refresh, 5000); } }
  if ("EventSource" in window) {
    var source = new EventSource(countUrl + "/events");
    source.addEventListener("count", function (e) {
      if (polling) { clearInterval(polling); polling = null; }
      show(JSON.parse(e.data));
    });
    source.onerror = function () { poll(); }; // the browser retries SSE; poll meanwhile
  } else {
    poll();
  }

  // Share: copy link.
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var done = function () {
        var note = button.parentNode.querySelector("[data-copied]");
        if (note) { note.hidden = false; setTimeout(function () { note.hidden = true; }, 3000); }
      };
      if (navigator.clipboard) navigator.clipboard.writeText(button.getAttribute("data-copy")).then(done, function () {});
      else { var input = document.getElementById("share-url"); input.select(); document.execCommand("copy"); done(); }
    });
  });

  // Sign in place through the JSON API; errors go next to their fields.
  var form = document.querySelector("[data-sign-form]");
  if (!form) return;
  var fields = ["name", "email", "country", "postcode", "comment"];
  var labels = { name: "Name", email: "Email", country: "Country", postcode: "Postcode", comment: "Comment" };

  function setError(field, message) {
    var slot = form.querySelector('[data-error="' + field + '"]');
    var input = form.elements[field];
    if (slot) { slot.textContent = message || ""; if (field === "form") slot.hidden = !message; }
    if (input && input.closest) {
      var box = input.closest(".field");
      if (box) box.classList.toggle("invalid", !!message);
      if (message) input.setAttribute("aria-invalid", "true"); else input.removeAttribute("aria-invalid");
    }
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    fields.concat(["form"]).forEach(function (f) { setError(f, ""); });
    var body = { updates: form.elements.updates.checked };
    fields.forEach(function (f) { var v = form.elements[f].value.trim(); if (v) body[f] = v; });
    var missing = [];
    ["name", "email", "country"].forEach(function (f) {
      if (!body[f]) { setError(f, f === "country" ? "Choose your country." : labels[f] + " is required."); missing.push(f); }
    });
    if (missing.length) { form.elements[missing[0]].focus(); return; }
    var submit = form.querySelector("[data-submit]");
    submit.disabled = true; submit.textContent = "Signing…";
    fetch(form.getAttribute("data-api"), {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    }).then(function (response) {
      if (response.status === 202) {
        form.hidden = true;
        var thanks = document.querySelector("[data-thanks]");
        thanks.hidden = false; thanks.focus();
        refresh(); setTimeout(refresh, 1000); // the count follows within moments (SSE also pushes it)
        return;
      }
      return response.json().catch(function () { return {}; }).then(function (problem) {
        var errors = problem.errors || {};
        var first = null;
        Object.keys(errors).forEach(function (field) {
          var known = fields.indexOf(field) >= 0;
          setError(known ? field : "form", (known ? labels[field] + " " : "") + String(errors[field]).replace(/\.$/, "") + ".");
          if (known && !first) first = field;
        });
        if (!Object.keys(errors).length) setError("form", problem.detail || "Something went wrong. Please try again.");
        if (first) form.elements[first].focus();
      });
    }).catch(function () {
      setError("form", "We could not reach the server. Check your connection and try again.");
    }).then(function () { submit.disabled = false; submit.textContent = "Sign this petition"; });
  });
})();
