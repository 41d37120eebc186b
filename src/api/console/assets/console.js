// Herald console: the live tail, live delivery states, and small conveniences. Pages work
// without it; it adds what changes while they are open.
"use strict";
(function () {
  function text(v) { return v === null || v === undefined ? "" : String(v); }

  function cell(tr, value, cls) {
    var td = document.createElement("td");
    if (cls) { td.className = cls; }
    td.textContent = text(value);
    tr.appendChild(td);
    return td;
  }

  function shownState(state) {
    return state === "retry" || state === "wait" ? "pending" : state;
  }

  function updateRows(h) {
    if (h.kind !== "attempted" && h.kind !== "state") { return; }
    var rows = document.querySelectorAll('[data-delivery="' + h.delivery_id + '"]');
    rows.forEach(function (row) {
      var state = row.querySelector("[data-state]");
      if (state) {
        state.textContent = shownState(h.state).replace("_", " ");
        state.className = "state " + shownState(h.state);
      }
      var attempts = row.querySelector("[data-attempts]");
      if (attempts) { attempts.textContent = text(h.attempt); }
      var error = row.querySelector("[data-error]");
      if (error) { error.textContent = text(h.error); }
    });
  }

  function addToTail(body, h) {
    var tr = document.createElement("tr");
    tr.setAttribute("data-kind", h.kind);
    cell(tr, new Date(h.at).toISOString().replace("T", " ").slice(0, 19) + " UTC");
    if (h.kind === "accepted") {
      cell(tr, "event accepted");
      var ev = cell(tr, "");
      ev.textContent = h.event_name;
      cell(tr, "");
      var st = cell(tr, "");
      var badge = document.createElement("span");
      badge.className = "state in_flight";
      badge.textContent = "accepted";
      st.textContent = "";
      st.appendChild(badge);
      cell(tr, h.deliveries + " deliveries");
    } else {
      var what = document.createElement("td");
      var link = document.createElement("a");
      link.href = "/console/deliveries/" + encodeURIComponent(h.delivery_id);
      link.textContent = "attempt " + h.attempt;
      what.appendChild(link);
      tr.appendChild(what);
      cell(tr, h.event_name);
      cell(tr, h.endpoint || h.endpoint_id);
      var s = document.createElement("td");
      var b = document.createElement("span");
      b.className = "state " + (h.state === "retry" || h.state === "wait" ? "pending" : h.state);
      b.textContent = h.state.replace("_", " ");
      s.appendChild(b);
      tr.appendChild(s);
      var detail = [];
      if (h.http_status) { detail.push("HTTP " + h.http_status); }
      if (h.duration_ms !== null && h.duration_ms !== undefined) { detail.push(h.duration_ms + " ms"); }
      if (h.error) { detail.push(h.error); }
      cell(tr, detail.join(" · "), "wrap");
    }
    body.insertBefore(tr, body.firstChild);
    while (body.rows.length > 200) { body.deleteRow(body.rows.length - 1); }
  }

  function listen() {
    var tail = document.querySelector("#tail tbody");
    var live = document.querySelector("[data-live]");
    if (!tail && !live) { return; }
    var status = document.getElementById("tail-status");
    // The stream starts with the current state of the deliveries on the page, so a change
    // made before it connected is not missed.
    var ids = [];
    document.querySelectorAll("[data-delivery]").forEach(function (el) {
      var id = el.getAttribute("data-delivery");
      if (ids.indexOf(id) < 0 && ids.length < 100) { ids.push(id); }
    });
    var source = new EventSource("/console/tail/stream" + (ids.length ? "?watch=" + ids.join(",") : ""));
    source.addEventListener("open", function () { if (status) { status.textContent = "Live."; } });
    source.addEventListener("error", function () { if (status) { status.textContent = "Reconnecting…"; } });
    // The session ended (signed out, expired, or idle): reconnecting would only be refused.
    source.addEventListener("ended", function () {
      source.close();
      if (status) {
        status.textContent = "Your session ended. ";
        var again = document.createElement("a");
        again.href = "/console/sign-in?next=" + encodeURIComponent(location.pathname + location.search);
        again.textContent = "Sign in again";
        status.appendChild(again);
      }
    });
    source.addEventListener("lagged", function (e) { if (status) { status.textContent = "Live (" + e.data + " skipped while the page fell behind)."; } });
    source.addEventListener("happening", function (e) {
      var h;
      try { h = JSON.parse(e.data); } catch (err) { return; }
      if (tail && h.kind !== "state") { addToTail(tail, h); }
      updateRows(h);
    });
  }

  function conveniences() {
    document.querySelectorAll("[data-select-all]").forEach(function (all) {
      all.addEventListener("change", function () {
        var form = all.closest("form");
        if (!form) { return; }
        form.querySelectorAll('input[name="ids"]').forEach(function (c) { c.checked = all.checked; });
      });
    });
    document.querySelectorAll("[data-select-on-focus]").forEach(function (input) {
      input.addEventListener("focus", function () { input.select(); });
    });
    // A form sent back with problems: focus goes to its first invalid field, whose label and
    // error a screen reader then reads (an alert present at load is often not announced).
    var invalid = document.querySelector('form [aria-invalid="true"]');
    if (invalid) { invalid.focus(); }
  }

  document.addEventListener("DOMContentLoaded", function () { listen(); conveniences(); });
})();
