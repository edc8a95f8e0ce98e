/* The canary dashboard page: the list of Rollouts and one Rollout in detail, live from the
 * server's event stream (/api/stream). Plain DOM, text only (never HTML from the data). */
(function () {
  "use strict";

  var rows = [];
  var selected = null;        // "namespace/name" from the location hash, or null
  var loading = false, again = false;
  var apiError = null;
  var DETAIL_REFRESH_MS = 10000;  // the events and Prometheus lines change without a watch event

  function $(id) { return document.getElementById(id); }

  function cell(row, content, className) {
    var td = document.createElement("td");
    if (content instanceof Node) td.appendChild(content); else td.textContent = content;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function weightBar(weight) {
    var wrap = document.createElement("span");
    var bar = document.createElement("span");
    bar.className = "weight";
    var fill = document.createElement("span");
    fill.style.width = Math.max(0, Math.min(100, weight)) + "%";
    bar.appendChild(fill);
    wrap.appendChild(bar);
    wrap.appendChild(document.createTextNode(weight + "%"));
    return wrap;
  }

  function selectedFromHash() {
    var match = /^#\/([^/]+)\/([^/]+)$/.exec(location.hash);
    return match ? decodeURIComponent(match[1]) + "/" + decodeURIComponent(match[2]) : null;
  }

  // ------------------------------------------------------------------ the list

  function renderList() {
    var body = $("rollouts").tBodies[0];
    while (body.firstChild) body.removeChild(body.firstChild);
    rows.forEach(function (r) {
      var tr = document.createElement("tr");
      tr.dataset.key = r.key;
      tr.dataset.phase = r.phase;
      tr.dataset.stage = r.stage;
      cell(tr, r.namespace);
      cell(tr, r.name, "name");
      cell(tr, r.phaseText, "phase phase-" + r.phase);
      cell(tr, r.stage, "stage");
      cell(tr, r.step, "step");
      cell(tr, weightBar(r.canaryWeight));
      cell(tr, r.stableVersion);
      cell(tr, r.canaryVersion);
      cell(tr, r.message, "message");
      tr.addEventListener("click", function () {
        location.hash = "#/" + encodeURIComponent(r.namespace) + "/" + encodeURIComponent(r.name);
      });
      body.appendChild(tr);
    });
    $("no-rollouts").hidden = rows.length > 0;
  }

  // ------------------------------------------------------------------ one Rollout

  function show() {
    selected = selectedFromHash();
    $("list-view").hidden = selected !== null;
    $("detail-view").hidden = selected === null;
    $("action-result").textContent = "";
    if (selected) {
      $("detail-title").textContent = selected;
      $("detail-view").dataset.key = selected;
      loadDetail();
    }
  }

  function loadDetail() {
    if (!selected) return;
    if (loading) { again = true; return; }
    loading = true;
    var key = selected;
    fetch("/api/rollouts/" + key, {headers: {Accept: "application/json"}})
      .then(function (response) { return response.json().then(function (b) { return [response, b]; }); })
      .then(function (answer) {
        if (key !== selected) return;
        if (!answer[0].ok) { $("detail-message").textContent = answer[1].error || "not found"; return; }
        renderDetail(answer[1]);
      })
      .catch(function () { /* the server is away: the stream's error handler says so */ })
      .then(function () {
        loading = false;
        if (again) { again = false; loadDetail(); }
      });
  }

  function renderDetail(d) {
    var view = $("detail-view");
    view.dataset.phase = d.phase;
    view.dataset.stage = d.stage;
    var phase = $("detail-phase");
    phase.textContent = d.phaseText;
    phase.className = "phase phase-" + d.phase;
    $("detail-stage").textContent = d.stage;
    $("detail-step").textContent = d.step;
    var t = d.traffic;
    var traffic = "stable " + t.stable + "% / canary " + t.canary + "%";
    if (t.mirror) traffic += ", mirror " + t.mirror + "%";
    if (t.headerRoute) traffic += ", header route on";
    $("detail-traffic").textContent = traffic;
    $("detail-versions").textContent = "stable " + d.stableVersion + ", canary " + d.canaryVersion;
    $("detail-failed").textContent = d.failureLimit
      ? d.failedChecks + " of " + d.failureLimit + " (consecutive)" : String(d.failedChecks);
    $("detail-message").textContent = d.message || "-";
    var handled = d.handledRequest;
    $("detail-request").textContent = handled ? handled.action + ": " + handled.result : "-";

    CanaryCharts.lineChart($("traffic-chart"), Object.assign({yMin: 0, yMax: 100}, d.charts.traffic));

    var gates = $("gates").tBodies[0];
    while (gates.firstChild) gates.removeChild(gates.firstChild);
    d.gates.forEach(function (g) {
      var tr = document.createElement("tr");
      tr.dataset.gate = g.name;
      cell(tr, g.name);
      cell(tr, g.value === null || g.value === undefined ? "-" : CanaryCharts.formatValue(g.value, ""));
      cell(tr, g.threshold);
      cell(tr, g.verdict, "verdict-" + g.verdict);
      cell(tr, g.message);
      gates.appendChild(tr);
    });

    var holder = $("gate-charts");
    var wanted = d.charts.gates.map(function (c) { return c.title; });
    Array.prototype.slice.call(holder.children).forEach(function (child) {
      if (wanted.indexOf(child.dataset.gate) < 0) holder.removeChild(child);
    });
    d.charts.gates.forEach(function (spec) {
      var box = holder.querySelector('[data-gate="' + CSS.escape(spec.title) + '"]');
      if (!box) {
        box = document.createElement("div");
        box.className = "chart gate-chart";
        box.dataset.gate = spec.title;
        holder.appendChild(box);
      }
      CanaryCharts.lineChart(box, spec);
    });

    $("range-note").textContent = d.rangeNote || "";
    $("range-note").hidden = !d.rangeNote;

    var events = $("events").tBodies[0];
    while (events.firstChild) events.removeChild(events.firstChild);
    d.events.slice().reverse().forEach(function (e) {
      var tr = document.createElement("tr");
      tr.className = "event-" + e.type;
      tr.dataset.reason = e.reason;
      cell(tr, e.time ? new Date(e.time).toLocaleTimeString() : "-");
      cell(tr, e.type);
      cell(tr, e.reason);
      cell(tr, e.message + (e.count > 1 ? " (×" + e.count + ")" : ""));
      events.appendChild(tr);
    });
  }

  // ------------------------------------------------------------------ the buttons

  function act(action) {
    if (!selected) return;
    var result = $("action-result");
    var buttons = document.querySelectorAll("#actions button");
    buttons.forEach(function (b) { b.disabled = true; });
    result.removeAttribute("data-ok");
    result.textContent = action + ": waiting for the controller's answer…";
    fetch("/api/rollouts/" + selected + "/" + action, {
      method: "POST",
      headers: {"X-Canary-Dashboard": "1", "Content-Type": "application/json"},
      body: "{}"
    })
      .then(function (response) { return response.json(); })
      .then(function (answer) {
        result.dataset.ok = String(Boolean(answer.ok));
        result.textContent = answer.message || answer.error || "(no answer)";
      })
      .catch(function (error) {
        result.dataset.ok = "false";
        result.textContent = action + " failed: the dashboard server did not answer (" + error + ")";
      })
      .then(function () {
        buttons.forEach(function (b) { b.disabled = false; });
        loadDetail();
      });
  }

  // ------------------------------------------------------------------ the stream

  function setError(message) {
    apiError = message;
    var banner = $("api-error");
    banner.hidden = message === null;
    banner.textContent = message === null ? ""
      : "The Kubernetes API is unreachable: " + message + ". Showing the last data seen; " +
        "this clears when the API is back.";
  }

  function connect() {
    var source = new EventSource("/api/stream");
    var connection = $("connection");
    source.onopen = function () {
      connection.dataset.state = "live";
      connection.textContent = "live";
    };
    source.onerror = function () {
      connection.dataset.state = "reconnecting";
      connection.textContent = "reconnecting to the dashboard server…";
    };
    source.addEventListener("change", function (message) {
      var data = JSON.parse(message.data);
      rows = data.rollouts;
      renderList();
      if (selected && (data.changed === null || data.changed === selected)) loadDetail();
    });
    source.addEventListener("api-error", function (message) {
      setError(JSON.parse(message.data).message);
    });
    source.addEventListener("api-ok", function () {
      setError(null);
      loadDetail();
    });
  }

  document.querySelectorAll("#actions button").forEach(function (button) {
    button.addEventListener("click", function () { act(button.dataset.action); });
  });
  $("home").addEventListener("click", function (event) {
    event.preventDefault();
    history.pushState(null, "", location.pathname);
    show();
  });
  window.addEventListener("hashchange", show);
  show();
  connect();
  setInterval(function () { if (selected && apiError === null) loadDetail(); }, DETAIL_REFRESH_MS);
  window.canaryDashboard = {state: function () { return {rows: rows, selected: selected, apiError: apiError}; }};
})();
