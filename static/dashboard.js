/* Staff dashboard: draws the time-series charts with uPlot (static/vendor/uplot).
 *
 * No inline script anywhere: each chart is a <div data-chart="ID"> whose data sits in a
 * <script type="application/json" id="ID"> block written by the server (JSON-escaped).
 * Everything else on the pages works without this file.
 */
(function () {
  "use strict";

  var COLORS = ["#2f5d50", "#c9772b", "#8a3b5c", "#6b6b66"];
  var HEIGHT = 260;

  function number(value, lang, decimals) {
    return value.toLocaleString(lang === "fr" ? "fr-FR" : "en-GB", {
      maximumFractionDigits: decimals, minimumFractionDigits: decimals
    });
  }

  function formatter(kind, lang, decimals) {
    return function (u, value) {
      if (value == null) { return "—"; }
      if (kind === "rate") { return number(value * 100, lang, decimals) + "\u00a0%"; }
      return number(value, lang, 0);
    };
  }

  function shortLabel(label) {
    // "2026-11-24 13:00" -> "11-24 13:00", "2026-11-24" -> "11-24"; months stay "2026-11".
    return label.length > 7 ? label.slice(5) : label;
  }

  function draw(el) {
    var source = document.getElementById(el.getAttribute("data-chart"));
    if (!source || typeof window.uPlot !== "function") { return; }
    var data = JSON.parse(source.textContent);
    var labels = data.labels;
    var isRate = data.series.length > 0 && data.series[0].kind === "rate";
    var series = [{
      label: data.xlabel || "",
      value: function (u, i) { return i == null ? "" : (labels[i] || ""); }
    }];
    data.series.forEach(function (s, i) {
      series.push({
        label: s.label,
        stroke: COLORS[i % COLORS.length],
        width: 2,
        points: { show: labels.length <= 62 },
        value: formatter(s.kind, data.lang, 1)
      });
    });
    var yFormat = formatter(isRate ? "rate" : "int", data.lang, 0);
    var options = {
      width: Math.max(el.clientWidth, 280),
      height: HEIGHT,
      series: series,
      scales: { x: { time: false }, y: { range: isRate ? [0, 1] : function (u, min, max) { return [0, Math.max(max, 1)]; } } },
      axes: [
        {
          incrs: [1, 2, 3, 4, 6, 7, 12, 14, 24, 30, 48, 60, 90, 168, 180, 365],
          values: function (u, splits) {
            return splits.map(function (i) { return labels[i] != null ? shortLabel(labels[i]) : ""; });
          }
        },
        { values: function (u, splits) { return splits.map(function (v) { return yFormat(u, v); }); }, size: 60 }
      ],
      legend: { live: true }
    };
    var columns = [labels.map(function (_, i) { return i; })];
    data.series.forEach(function (s) { columns.push(s.values); });
    var plot = new window.uPlot(options, columns, el);
    if (typeof ResizeObserver === "function") {
      new ResizeObserver(function () {
        plot.setSize({ width: Math.max(el.clientWidth, 280), height: HEIGHT });
      }).observe(el);
    }
  }

  function start() {
    var charts = document.querySelectorAll("[data-chart]");
    for (var i = 0; i < charts.length; i++) { draw(charts[i]); }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
