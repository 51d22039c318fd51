// The live debugger: one websocket, a list that merges what each stage reports, filters, pause,
// JSON views and "copy as curl". Reconnects with backoff when the server goes away. No build step.
(function () {
  "use strict";
  var root = document.getElementById("debugger");
  if (!root) return;

  var KIND = root.dataset.kind; // "source" or "destination"
  var MAX_ROWS = 500;
  var MAX_HELD = 5000;
  var $ = function (id) { return root.querySelector("[data-testid=" + id + "]"); };
  var tbody = $("rows");
  var rows = new Map(); // key -> {item, tr}
  var pendingByMessage = new Map(); // messageId -> key of the row still waiting for the processor
  var seenEvents = new Map(); // eventId -> key
  var sequence = 0;
  var paused = false;
  var held = [];
  var skipped = 0;
  var selected = null;
  var view = "pretty";
  var filters = {};
  var socket = null;
  var failures = 0;
  var timer = null;

  // --- connection ------------------------------------------------------------------------------
  function setState(state, text) {
    root.dataset.state = state;
    $("status").textContent = text;
    $("status").className = "pill " + state;
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    setState("connecting", failures ? "reconnecting…" : "connecting…");
    socket = new WebSocket(scheme + location.host + root.dataset.ws);
    socket.onopen = function () { failures = 0; setState("live", paused ? "paused" : "live"); };
    socket.onmessage = function (message) { receive(JSON.parse(message.data)); };
    socket.onclose = function (event) {
      socket = null;
      if (event.code === 4401 || event.code === 4403) {
        setState("refused", "not allowed: log in again as a member of this workspace");
        return;
      }
      // Exponential backoff with jitter, at most 5 s: a restarted server is found again quickly.
      var delay = Math.min(5000, 250 * Math.pow(2, failures)) * (0.75 + Math.random() * 0.5);
      failures += 1;
      setState("reconnecting", "disconnected, reconnecting in " + Math.ceil(delay / 1000) + " s…");
      timer = setTimeout(connect, delay);
    };
  }

  function receive(message) {
    if (message.kind === "backlog") {
      message.items.forEach(function (item) { apply(item, true); });
    } else {
      skipped += message.dropped || 0;
      if (paused) {
        message.items.forEach(function (item) {
          if (held.length < MAX_HELD) held.push(item); else skipped += 1;
        });
      } else {
        message.items.forEach(function (item) { apply(item, false); });
      }
    }
    refreshCounters();
  }

  // --- merging items into rows --------------------------------------------------------------------
  function keyFor(item, fromBacklog) {
    if (KIND === "destination") return "d" + item.deliveryId;
    if (item.eventId && seenEvents.has(item.eventId)) return seenEvents.get(item.eventId);
    if ((item.kind === "stored" || item.kind === "duplicate") && !fromBacklog && pendingByMessage.has(item.messageId)) {
      var key = pendingByMessage.get(item.messageId);
      pendingByMessage.delete(item.messageId);
      return key;
    }
    if (fromBacklog && item.kind === "rejected") return "r" + item.at + ":" + item.index + ":" + item.code;
    sequence += 1;
    return "n" + sequence;
  }

  function apply(item, fromBacklog) {
    var key = keyFor(item, fromBacklog);
    var row = rows.get(key);
    if (row) {
      if (fromBacklog && KIND === "source") return; // what is shown already is as new
      if (KIND === "destination" && (row.item.attempt || 0) > (item.attempt || 0)) return;
      if (row.item.kind === "accepted") item.sent = row.item.message;
      row.item = item;
      render(row);
    } else {
      row = { key: key, item: item, tr: document.createElement("tr") };
      row.tr.dataset.testid = "debug-row";
      row.tr.dataset.key = key;
      row.tr.tabIndex = 0;
      row.tr.addEventListener("click", function () { select(row); });
      row.tr.addEventListener("keydown", function (event) { if (event.key === "Enter") select(row); });
      rows.set(key, row);
      render(row);
      tbody.insertBefore(row.tr, tbody.firstChild);
      trim();
    }
    if (item.kind === "accepted" && item.messageId) pendingByMessage.set(item.messageId, key);
    if (item.eventId) seenEvents.set(item.eventId, key);
    if (selected === row) showDetail(row);
  }

  function trim() {
    while (rows.size > MAX_ROWS) {
      var oldest = tbody.lastChild;
      var row = rows.get(oldest.dataset.key);
      rows.delete(oldest.dataset.key);
      if (row && row.item.eventId) seenEvents.delete(row.item.eventId);
      tbody.removeChild(oldest);
    }
    if (pendingByMessage.size > MAX_HELD) pendingByMessage.clear();
  }

  // --- rendering ---------------------------------------------------------------------------------
  function cell(tr, text, className, title) {
    var td = document.createElement("td");
    if (className) {
      var span = document.createElement("span");
      span.className = className;
      span.textContent = text;
      td.appendChild(span);
    } else {
      td.textContent = text;
    }
    if (title) td.title = title;
    tr.appendChild(td);
    return td;
  }

  function clock(iso) { return iso ? iso.replace("T", " ").slice(0, 19) : ""; }

  function render(row) {
    var item = row.item;
    var tr = row.tr;
    tr.textContent = "";
    tr.dataset.kind = item.kind;
    if (KIND === "source") {
      tr.dataset.type = item.type || "";
      tr.dataset.messageId = item.messageId || "";
      cell(tr, item.type || "request", "badge type-" + (item.type || "none"));
      cell(tr, item.kind, "badge outcome-" + item.kind, item.reason ? item.code + ": " + item.reason : "");
      cell(tr, item.kind === "refused" || item.kind === "rejected" ? (item.event || "") + " " + (item.reason || "") : item.event || "—");
      cell(tr, item.userId || item.anonymousId || "", "mono");
      cell(tr, clock(item.at));
    } else {
      tr.dataset.status = item.status;
      tr.dataset.messageId = item.messageId || "";
      cell(tr, item.status, "badge status-" + item.status);
      cell(tr, item.event || item.action || "—");
      cell(tr, item.attempt ? "#" + item.attempt : "—");
      cell(tr, item.responseStatus ? String(item.responseStatus) : "—", "mono");
      var problem = item.error || "";
      if (item.retryAt) problem += (problem ? " · " : "") + "retry at " + clock(item.retryAt);
      if (item.deadLettered) problem += (problem ? " · " : "") + "dead-lettered";
      cell(tr, problem || "—", item.error ? "error-text" : "");
      cell(tr, clock(item.at));
    }
    tr.hidden = !matches(item);
    if (selected === row) tr.classList.add("selected");
  }

  function refreshCounters() {
    var shown = 0;
    rows.forEach(function (row) { if (!row.tr.hidden) shown += 1; });
    $("shown").textContent = String(shown);
    $("skipped").textContent = String(skipped);
    $("empty").hidden = rows.size > 0;
    var heldBox = $("held");
    heldBox.hidden = !paused;
    heldBox.textContent = held.length + " new while paused";
  }

  // --- filters and pause -------------------------------------------------------------------------
  function contains(value, wanted) { return String(value || "").toLowerCase().indexOf(wanted) !== -1; }

  function matches(item) {
    if (filters.type && item.type !== filters.type) return false;
    if (filters.kind && item.kind !== filters.kind) return false;
    if (filters.status && item.status !== filters.status) return false;
    if (filters.event && !contains(item.event, filters.event)) return false;
    if (filters.user && !contains(item.userId, filters.user) && !contains(item.anonymousId, filters.user)) return false;
    if (filters.text && !contains(JSON.stringify(item), filters.text)) return false;
    return true;
  }

  root.querySelectorAll("[data-filter]").forEach(function (input) {
    input.addEventListener("input", function () {
      var value = input.value.trim();
      filters[input.dataset.filter] = input.tagName === "SELECT" ? value : value.toLowerCase();
      rows.forEach(function (row) { row.tr.hidden = !matches(row.item); });
      refreshCounters();
    });
  });

  $("pause").addEventListener("click", function () {
    paused = !paused;
    $("pause").textContent = paused ? "Resume" : "Pause";
    $("pause").setAttribute("aria-pressed", paused ? "true" : "false");
    if (!paused) {
      var items = held;
      held = [];
      items.forEach(function (item) { apply(item, false); });
    }
    if (root.dataset.state === "live" || root.dataset.state === "paused") {
      setState(paused ? "paused" : "live", paused ? "paused" : "live");
    }
    refreshCounters();
  });

  // --- detail: JSON views, curl, X-ray link ------------------------------------------------------
  function bodyOf(item) {
    if (KIND === "destination") {
      return { payload: item.payload, request: item.request, response: { status: item.responseStatus, body: item.responseBody },
        error: item.error, errorClass: item.errorClass, retryAt: item.retryAt, deadLettered: item.deadLettered };
    }
    return item.message;
  }

  function curlFor(item) {
    var message = Object.assign({}, item.sent || item.message || {});
    ["messageId", "receivedAt", "sentAt", "writeKey", "_metadata"].forEach(function (name) { delete message[name]; });
    var type = item.type || message.type || "track";
    var body = JSON.stringify(message).replace(/'/g, "'\\''");
    return "curl -X POST '" + root.dataset.origin + "/v1/" + type + "' \\\n  -u '" + root.dataset.writeKey +
      ":' \\\n  -H 'Content-Type: application/json' \\\n  -d '" + body + "'";
  }

  function xrayUrl(item) {
    if (item.eventId) return root.dataset.eventXray.replace(/\/0\/xray\/$/, "/" + item.eventId + "/xray/");
    if (root.dataset.xrayLookup && item.messageId) return root.dataset.xrayLookup + encodeURIComponent(item.messageId);
    return "";
  }

  function showDetail(row) {
    var item = row.item;
    var body = bodyOf(item);
    $("detail").hidden = false;
    $("detail-summary").textContent = [item.kind || item.status, item.type, item.event, item.messageId && "messageId " + item.messageId,
      item.code && item.code + ": " + item.reason].filter(Boolean).join(" · ");
    $("json").textContent = body === null || body === undefined
      ? "(" + (item.size || 0) + " bytes: too big to show here; open the X-ray)"
      : view === "pretty" ? JSON.stringify(body, null, 2) : JSON.stringify(body);
    var link = $("xray-link");
    var url = xrayUrl(item);
    link.hidden = !url;
    link.href = url || "#";
    if ($("curl")) {
      var replayable = KIND === "source" && item.kind !== "refused" && (item.sent || item.message);
      $("curl").textContent = replayable ? curlFor(item) : "Nothing to replay for this entry.";
      $("copy-curl").disabled = !replayable;
    }
  }

  function select(row) {
    if (selected) selected.tr.classList.remove("selected");
    selected = row;
    row.tr.classList.add("selected");
    showDetail(row);
  }

  root.querySelectorAll("[data-view]").forEach(function (tab) {
    tab.addEventListener("click", function () {
      view = tab.dataset.view;
      root.querySelectorAll("[data-view]").forEach(function (other) {
        other.setAttribute("aria-selected", other === tab ? "true" : "false");
      });
      if (selected) showDetail(selected);
    });
  });

  if ($("copy-curl")) {
    $("copy-curl").addEventListener("click", function () {
      var button = $("copy-curl");
      var text = $("curl").textContent;
      var done = function () { button.textContent = "Copied"; setTimeout(function () { button.textContent = "Copy as curl"; }, 2000); };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, function () { button.textContent = "Select and copy by hand"; });
      } else {
        var range = document.createRange();
        range.selectNodeContents($("curl"));
        window.getSelection().removeAllRanges();
        window.getSelection().addRange(range);
        if (document.execCommand("copy")) done(); else button.textContent = "Select and copy by hand";
      }
    });
  }

  window.addEventListener("beforeunload", function () {
    clearTimeout(timer);
    if (socket) { socket.onclose = null; socket.close(); }
  });
  refreshCounters();
  connect();
})();
