// Overview and source pages: the live volume chart (polled) and the schema search. No build step.
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var POLL_MS = 5000;
  var WIDTH = 960, HEIGHT = 200, LEFT = 48, TOP = 8, BOTTOM = 22;

  function el(name, attrs, text) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // The same drawing as templates/dashboard/overview/_chart.html, from the geometry the server sends.
  function draw(data, caption) {
    var svg = el("svg", { "class": "bar-chart", viewBox: "0 0 " + WIDTH + " " + HEIGHT, role: "group", "aria-label": caption });
    data.yTicks.forEach(function (tick) {
      svg.appendChild(el("line", { "class": "grid", x1: LEFT, x2: WIDTH, y1: tick.position, y2: tick.position }));
      svg.appendChild(el("text", { "class": "tick", x: LEFT - 8, y: tick.position, "text-anchor": "end", "dominant-baseline": "middle" }, tick.label));
    });
    var slot = (WIDTH - LEFT) / Math.max(data.bars.length, 1);
    var gap = Math.min(2, slot * 0.2);
    data.bars.forEach(function (bar, index) {
      var x = LEFT + index * slot + gap / 2;
      var group = el("g", { "class": "bar", role: "img", "aria-label": bar.title, "data-count": bar.count });
      group.appendChild(el("title", {}, bar.title));
      group.appendChild(el("rect", { "class": "hit", x: x, y: TOP, width: slot - gap, height: HEIGHT - TOP - BOTTOM }));
      group.appendChild(el("rect", { "class": "fill", x: x, y: bar.y, width: slot - gap, height: bar.height }));
      svg.appendChild(group);
    });
    data.xLabels.forEach(function (label) {
      svg.appendChild(el("text", { "class": "label", x: label.position, y: HEIGHT - 5, "text-anchor": "middle" }, label.label));
    });
    return svg;
  }

  var live = document.getElementById("live-volume");
  if (live) {
    var box = live.querySelector("[data-testid=volume-chart]");
    var status = live.querySelector("[data-testid=volume-status]");
    var timer = null;
    var refresh = function () {
      if (document.hidden) return;
      fetch(live.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (data) {
          box.replaceChildren(draw(data, "Events received per minute, last hour"));
          live.querySelector("[data-testid=volume-hour]").textContent = data.total;
          live.querySelector("[data-testid=volume-minute]").textContent = data.lastMinute;
          live.querySelector("[data-testid=volume-empty]").hidden = data.total > 0;
          status.textContent = "Events per minute, last hour (UTC) · updated " + new Date(data.at).toLocaleTimeString();
          live.dataset.state = "live";
        })
        .catch(function () {
          status.textContent = "Could not update the live volume; retrying…";
          live.dataset.state = "error";
        });
    };
    refresh();
    timer = setInterval(refresh, POLL_MS);
    document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(); });
    window.addEventListener("pagehide", function () { clearInterval(timer); });
  }

  // Schema search: filters as you type; the form still works without this script (?q=).
  var search = document.getElementById("schema-q");
  if (search) {
    var events = Array.prototype.slice.call(document.querySelectorAll("tbody.schema-event"));
    var none = document.querySelector("[data-testid=schema-no-match]");
    search.addEventListener("input", function () {
      var needle = search.value.trim().toLowerCase();
      var shown = 0;
      events.forEach(function (body) {
        var head = body.querySelector(".event-row").textContent.toLowerCase();
        var eventMatches = !needle || head.indexOf(needle) !== -1;
        var anyField = false;
        body.querySelectorAll("tr.field-row[data-path]").forEach(function (row) {
          var hit = row.dataset.path.toLowerCase().indexOf(needle) !== -1;
          anyField = anyField || hit;
          row.hidden = !(eventMatches || hit);
        });
        body.hidden = !(eventMatches || anyField);
        if (!body.hidden) shown += 1;
      });
      if (none) none.hidden = shown > 0 || events.length === 0;
    });
  }
})();
