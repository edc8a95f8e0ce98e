/* CanaryCharts: small line charts as inline SVG, no dependencies.
 *
 *   CanaryCharts.lineChart(container, spec) -> the <svg> element (container's content replaced)
 *
 *   spec = {
 *     title: "success-rate", unit: "%",
 *     series: [{name: "canary", points: [[epochMillis, value], ...]}],  // dots: false: no dots
 *     thresholds: [{value: 99, label: ">= 99"}],
 *     markers: [{at: epochMillis, label: "split", kind: "hold" | "promote" | "rollback" | "stage"}],
 *     width: 560, height: 220,            // optional: the viewBox; the SVG scales to its box
 *     yMin: 0, yMax: 100                  // optional: a fixed value range
 *   }
 *
 * Used by `canary dashboard` and meant for any page that shows a release over time (e.g. a
 * backtest report): it reads nothing but `spec` and touches nothing but `container`.
 * Elements carry classes for styling and tests: .cc-series[data-series], .cc-point,
 * .cc-threshold, .cc-marker.cc-<kind>, .cc-empty.
 */
(function (root) {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var COLOURS = ["#2b7bd6", "#e07b00", "#2f9e44", "#9c36b5", "#c92a2a", "#0b7285"];
  var MARKER_COLOURS = {hold: "#e0a800", promote: "#2f9e44", rollback: "#c92a2a", stage: "#868e96"};
  var PAD = {left: 48, right: 12, top: 28, bottom: 34};

  function el(name, attributes, parent) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attributes || {}).forEach(function (key) {
      node.setAttribute(key, String(attributes[key]));
    });
    if (parent) parent.appendChild(node);
    return node;
  }

  function text(parent, x, y, content, attributes) {
    var node = el("text", Object.assign({x: x, y: y}, attributes || {}), parent);
    node.textContent = content;
    return node;
  }

  function tooltip(node, content) {
    el("title", {}, node).textContent = content;
  }

  function niceStep(span, count) {
    var raw = span / Math.max(1, count);
    var power = Math.pow(10, Math.floor(Math.log10(raw)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) {
      if (raw <= steps[i] * power) return steps[i] * power;
    }
    return 10 * power;
  }

  function formatValue(value, unit) {
    var shown = Math.abs(value) >= 1000 || value === Math.round(value)
      ? String(Math.round(value * 100) / 100)
      : String(Number(value.toPrecision(4)));
    return unit ? shown + (unit === "%" ? "%" : " " + unit) : shown;
  }

  function formatTime(millis, span) {
    var date = new Date(millis);
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    var hm = pad(date.getHours()) + ":" + pad(date.getMinutes());
    if (span > 2 * 86400000) return (date.getMonth() + 1) + "/" + date.getDate() + " " + hm;
    return span < 600000 ? hm + ":" + pad(date.getSeconds()) : hm;
  }

  function extent(spec) {
    var xs = [], ys = [];
    (spec.series || []).forEach(function (series) {
      (series.points || []).forEach(function (point) {
        if (point[1] !== null && isFinite(point[1])) { xs.push(point[0]); ys.push(point[1]); }
      });
    });
    (spec.thresholds || []).forEach(function (t) { ys.push(t.value); });
    var markerXs = (spec.markers || []).map(function (m) { return m.at; });
    if (!xs.length) return null;
    var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs);
    markerXs.forEach(function (x) {  // markers widen the range only near the data
      if (x >= x0 - (x1 - x0) * 0.5 && x <= x1 + (x1 - x0) * 0.5) {
        x0 = Math.min(x0, x); x1 = Math.max(x1, x);
      }
    });
    if (x1 === x0) { x0 -= 30000; x1 += 30000; }
    var y0 = spec.yMin !== undefined ? spec.yMin : Math.min.apply(null, ys);
    var y1 = spec.yMax !== undefined ? spec.yMax : Math.max.apply(null, ys);
    if (y1 === y0) { y0 -= Math.abs(y0) * 0.05 || 1; y1 += Math.abs(y1) * 0.05 || 1; }
    var margin = (y1 - y0) * 0.08;
    if (spec.yMin === undefined) y0 -= margin;
    if (spec.yMax === undefined) y1 += margin;
    return {x0: x0, x1: x1, y0: y0, y1: y1};
  }

  function lineChart(container, spec) {
    spec = spec || {};
    var width = spec.width || 560, height = spec.height || 220;
    while (container.firstChild) container.removeChild(container.firstChild);
    var svg = el("svg", {
      viewBox: "0 0 " + width + " " + height, class: "cc-chart", role: "img",
      "aria-label": spec.title || "chart", preserveAspectRatio: "xMidYMid meet"
    }, container);
    text(svg, PAD.left, 16, (spec.title || "") + (spec.unit ? " (" + spec.unit + ")" : ""),
      {class: "cc-title", "font-size": 13, "font-weight": "bold"});
    var range = extent(spec);
    if (!range) {
      text(svg, width / 2, height / 2, "no data yet",
        {class: "cc-empty", "text-anchor": "middle", fill: "#868e96", "font-size": 12});
      return svg;
    }
    var plotW = width - PAD.left - PAD.right, plotH = height - PAD.top - PAD.bottom;
    var sx = function (x) { return PAD.left + (x - range.x0) / (range.x1 - range.x0) * plotW; };
    var sy = function (y) { return PAD.top + (1 - (y - range.y0) / (range.y1 - range.y0)) * plotH; };
    var axes = el("g", {class: "cc-axes", "font-size": 10, fill: "#495057"}, svg);
    var yStep = niceStep(range.y1 - range.y0, 4);
    for (var y = Math.ceil(range.y0 / yStep) * yStep; y <= range.y1 + 1e-9; y += yStep) {
      el("line", {x1: PAD.left, x2: width - PAD.right, y1: sy(y), y2: sy(y),
        stroke: "#e9ecef"}, axes);
      text(axes, PAD.left - 4, sy(y) + 3, formatValue(y, ""), {"text-anchor": "end"});
    }
    var span = range.x1 - range.x0, ticks = 5;
    for (var i = 0; i <= ticks; i++) {
      var x = range.x0 + span * i / ticks;
      var anchor = i === 0 ? "start" : i === ticks ? "end" : "middle";
      text(axes, sx(x), height - PAD.bottom + 14, formatTime(x, span), {"text-anchor": anchor});
    }
    el("rect", {x: PAD.left, y: PAD.top, width: plotW, height: plotH, fill: "none",
      stroke: "#ced4da"}, axes);

    var rowEnds = [];  // where each row of marker labels ends, so that labels never overlap
    (spec.markers || []).slice().sort(function (a, b) { return a.at - b.at; }).forEach(function (marker) {
      if (marker.at < range.x0 || marker.at > range.x1) return;
      var kind = marker.kind || "stage";
      var colour = MARKER_COLOURS[kind] || MARKER_COLOURS.stage;
      var g = el("g", {class: "cc-marker cc-" + kind, "data-kind": kind}, svg);
      el("line", {x1: sx(marker.at), x2: sx(marker.at), y1: PAD.top, y2: PAD.top + plotH,
        stroke: colour, "stroke-dasharray": kind === "stage" ? "2,3" : "4,2"}, g);
      var label = marker.label || kind, x = sx(marker.at) + 2, row = 0;
      var labelWidth = 5.6 * label.length, anchor = "start";
      if (x + labelWidth > width - PAD.right) { x -= 4; anchor = "end"; }  // at the right edge
      var left = anchor === "end" ? x - labelWidth : x;
      while (rowEnds[row] !== undefined && rowEnds[row] > left) row++;
      rowEnds[row] = left + labelWidth + 6;
      text(g, x, PAD.top + 9 + 10 * row, label,
        {"font-size": 9, fill: colour, "text-anchor": anchor});
      tooltip(g, (marker.label || kind) + " at " + new Date(marker.at).toLocaleTimeString());
    });

    (spec.thresholds || []).forEach(function (threshold) {
      var g = el("g", {class: "cc-threshold", "data-value": threshold.value}, svg);
      el("line", {x1: PAD.left, x2: width - PAD.right, y1: sy(threshold.value),
        y2: sy(threshold.value), stroke: "#c92a2a", "stroke-dasharray": "6,3"}, g);
      text(g, width - PAD.right - 2, sy(threshold.value) - 3, threshold.label || "",
        {"text-anchor": "end", "font-size": 10, fill: "#c92a2a"});
    });

    var legend = el("g", {class: "cc-legend", "font-size": 10}, svg);
    var legendX = width - PAD.right;
    (spec.series || []).forEach(function (series, index) {
      var colour = series.colour || COLOURS[index % COLOURS.length];
      var g = el("g", {class: "cc-series", "data-series": series.name}, svg);
      var points = (series.points || []).filter(function (p) {
        return p[1] !== null && isFinite(p[1]);
      });
      var path = points.map(function (p, n) {
        return (n ? "L" : "M") + sx(p[0]).toFixed(1) + "," + sy(p[1]).toFixed(1);
      }).join(" ");
      if (series.step && points.length) {  // a value that holds until the next one
        path = points.map(function (p, n) {
          var here = sx(p[0]).toFixed(1) + "," + sy(p[1]).toFixed(1);
          if (!n) return "M" + here;
          return "H" + sx(p[0]).toFixed(1) + " V" + sy(p[1]).toFixed(1);
        }).join(" ");
        path += " H" + sx(range.x1).toFixed(1);
      }
      el("path", {d: path, fill: "none", stroke: colour, "stroke-width": 2}, g);
      if (series.dots === false) points = [];  // a dense line: its path alone
      points.forEach(function (p) {
        var dot = el("circle", {cx: sx(p[0]), cy: sy(p[1]), r: 2.5, fill: colour,
          class: "cc-point", "data-at": p[0], "data-value": p[1]}, g);
        tooltip(dot, series.name + ": " + formatValue(p[1], spec.unit) + " at " +
          new Date(p[0]).toLocaleTimeString());
      });
      var label = text(legend, legendX, 16, series.name, {"text-anchor": "end", fill: colour});
      legendX -= 8 + 6 * String(series.name).length;
      return label;
    });
    return svg;
  }

  var api = {lineChart: lineChart, formatValue: formatValue};
  if (typeof module === "object" && module.exports) module.exports = api;
  root.CanaryCharts = api;
})(typeof window !== "undefined" ? window : this);
