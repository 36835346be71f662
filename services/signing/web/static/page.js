// Groundswell petition page: sign in place, show the thank-you state, keep the count live.
// Without this script the page still works: the form posts and a thank-you page follows.
// Every word it shows comes from the page (rendered in the reader's language by the server).
(function () {
  "use strict";
  var lang = document.documentElement.lang || "en";

  // Dates and times in the reader's own time zone (the server writes them in UTC).
  document.querySelectorAll("time[data-local]").forEach(function (el) {
    var when = new Date(el.getAttribute("datetime"));
    if (!isNaN(when)) {
      el.textContent = new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "short" }).format(when);
    }
  });

  var root = document.querySelector("[data-petition]");
  if (!root) return;
  var petition = root.getAttribute("data-petition");
  var countUrl = "/petitions/" + petition + "/count";
  var shown = -1;
  // Latin digits, as the server writes them (shared/i18n.py), grouped as the language groups them.
  var numbers = new Intl.NumberFormat(lang + "-u-nu-latn");
  var plurals = new Intl.PluralRules(lang);
  function fmt(n) { return numbers.format(n); }

  // A sentence with the count in it, in the plural form the count takes in this language.
  function sentence(el, count, goal) {
    var forms = JSON.parse(el.getAttribute("data-forms"));
    var form = forms[plurals.select(count)] || forms.other || forms[Object.keys(forms)[0]];
    while (el.firstChild) el.removeChild(el.firstChild);
    form.split(/(\{count\}|\{goal\})/).forEach(function (part) {
      if (part === "{count}" || part === "{goal}") {
        var strong = document.createElement("strong");
        strong.setAttribute(part === "{count}" ? "data-count" : "data-goal", "");
        strong.textContent = fmt(part === "{count}" ? count : goal);
        el.appendChild(strong);
      } else if (part) {
        el.appendChild(document.createTextNode(part));
      }
    });
  }

  // Screen readers hear the whole sentence, politely, at most every ANNOUNCE_MS: a viral petition's
  // count changes many times a second, and each change announced would drown the page.
  var ANNOUNCE_MS = 5000;
  var announcer = document.querySelector("[data-announce]");
  var tally = document.querySelector("[data-tally]");
  var lastAnnounced = 0, announceTimer = null, announcedText = "";
  function announce() {
    if (!announcer || !tally) return;
    var wait = lastAnnounced + ANNOUNCE_MS - Date.now();
    if (wait > 0) {
      if (!announceTimer) announceTimer = setTimeout(function () { announceTimer = null; announce(); }, wait);
      return;
    }
    var text = tally.textContent.replace(/[ \t\n\r]+/g, " ").trim(); // not \s: a number may hold a no-break space
    if (text === announcedText) return;
    announcedText = text; lastAnnounced = Date.now();
    announcer.textContent = text;
  }

  function show(state) {
    if (typeof state.count !== "number" || state.count < shown) return; // never step backwards
    var first = shown < 0;
    var changed = state.count !== shown;
    shown = state.count;
    document.querySelectorAll("[data-forms]").forEach(function (el) { sentence(el, state.count, state.goal); });
    document.querySelectorAll("[data-count]").forEach(function (el) { el.textContent = fmt(state.count); });
    document.querySelectorAll("[data-goal]").forEach(function (el) { el.textContent = fmt(state.goal); });
    document.querySelectorAll("[data-bar]").forEach(function (el) {
      el.max = state.goal; el.value = Math.min(state.count, state.goal);
      el.textContent = Math.min(100, Math.round(100 * state.count / state.goal)) + "%";
    });
    document.querySelectorAll("[data-progress]").forEach(function (el) { el.hidden = false; });
    var rendered = parseInt(root.getAttribute("data-count-value") || "-1", 10);
    if (changed && !(first && state.count === rendered)) announce(); // the count the page opened with is no news
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

  // Sign in place through the JSON API; errors go next to their fields, in the page's language
  // (the API says which kind of problem each field has: missing, too_long, invalid).
  var form = document.querySelector("[data-sign-form]");
  if (!form) return;
  var messages = JSON.parse(form.getAttribute("data-messages") || "{}");
  var fields = ["name", "email", "country", "postcode", "comment"];
  function message(field, kind) { return (messages[field] || {})[kind] || messages.failed; }

  function setError(field, text) {
    var slot = form.querySelector('[data-error="' + field + '"]');
    var input = form.elements[field];
    if (slot) { slot.textContent = text || ""; if (field === "form") slot.hidden = !text; }
    if (input && input.closest) {
      var box = input.closest(".field");
      if (box) box.classList.toggle("invalid", !!text);
      if (text) input.setAttribute("aria-invalid", "true"); else input.removeAttribute("aria-invalid");
    }
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    fields.concat(["form"]).forEach(function (f) { setError(f, ""); });
    var summary = form.querySelector("[data-error-summary]");
    if (summary) summary.hidden = true;
    var body = { updates: form.elements.updates.checked, language: lang };
    fields.forEach(function (f) { var v = form.elements[f].value.trim(); if (v) body[f] = v; });
    var missing = [];
    ["name", "email", "country"].forEach(function (f) {
      if (!body[f]) { setError(f, message(f, "missing")); missing.push(f); }
    });
    if (missing.length) { form.elements[missing[0]].focus(); return; }
    var submit = form.querySelector("[data-submit]");
    submit.disabled = true; submit.textContent = messages.signing;
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
        var codes = problem.codes || {};
        var first = null;
        Object.keys(codes).forEach(function (field) {
          var known = fields.indexOf(field) >= 0;
          setError(known ? field : "form", known ? message(field, codes[field]) : messages.failed);
          if (known && !first) first = field;
        });
        if (!Object.keys(codes).length) {
          setError("form", response.status === 409 ? messages.closed
                   : response.status === 503 || response.status === 429 ? messages.busy : messages.failed);
        }
        if (first) form.elements[first].focus();
      });
    }).catch(function () {
      setError("form", messages.offline);
    }).then(function () { submit.disabled = false; submit.textContent = messages.submit; });
  });
})();
