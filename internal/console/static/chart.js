// Live line charts of the Spool console. Each <figure class="chart"
// data-src="/console/api/stats?…" data-chart="rates|latency"> is redrawn
// every 2 seconds from the JSON endpoint as an SVG line chart with a
// legend. Text goes in with textContent only, never as HTML.
(function () {
  'use strict';
  var NS = 'http://www.w3.org/2000/svg';
  var W = 600, H = 220, L = 56, R = 12, T = 12, B = 28;

  function el(name, attrs, text) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) { e.setAttribute(k, attrs[k]); }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  function fmt(v, unit) {
    if (v === null || v === undefined || isNaN(v)) { return '—'; }
    if (unit === 's') {
      if (v < 0.001) { return (v * 1e6).toFixed(0) + ' µs'; }
      if (v < 1) { return (v * 1e3).toFixed(v < 0.01 ? 2 : 1) + ' ms'; }
      return v.toFixed(2) + ' s';
    }
    if (v >= 1e6) { return (v / 1e6).toFixed(1) + 'M'; }
    if (v >= 1e4) { return (v / 1e3).toFixed(1) + 'k'; }
    if (v >= 100) { return v.toFixed(0); }
    return v.toFixed(v >= 10 ? 1 : 2);
  }

  function clock(ms) {
    var d = new Date(ms);
    return d.toISOString().substring(11, 19);
  }

  // niceMax rounds a maximum up to 1, 2 or 5 times a power of ten.
  function niceMax(v) {
    if (!(v > 0)) { return 1; }
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var steps = [1, 2, 5, 10];
    for (var i = 0; i < steps.length; i++) { if (steps[i] * p >= v) { return steps[i] * p; } }
    return 10 * p;
  }

  function draw(fig, c) {
    var plot = fig.querySelector('.plot');
    var caption = fig.querySelector('figcaption').textContent;
    while (plot.firstChild) { plot.removeChild(plot.firstChild); }
    var series = (c && c.series) || [];
    var t0 = Infinity, t1 = -Infinity, vmax = 0, any = false;
    series.forEach(function (s) {
      s.points.forEach(function (p) {
        t0 = Math.min(t0, p[0]); t1 = Math.max(t1, p[0]);
        if (p[1] !== null) { vmax = Math.max(vmax, p[1]); any = true; }
      });
    });
    if (!c || !c.available || !any) {
      var msg = (c && c.note) || 'no data yet: the first rates appear after two samples';
      var p = document.createElement('p');
      p.className = 'nodata';
      p.textContent = msg;
      plot.appendChild(p);
      plot.setAttribute('aria-label', caption + ': ' + msg);
      return;
    }
    if (t1 <= t0) { t0 = t1 - 1000; }
    var top = niceMax(vmax);
    var sx = function (t) { return L + (t - t0) / (t1 - t0) * (W - L - R); };
    var sy = function (v) { return H - B - v / top * (H - T - B); };
    var svg = el('svg', { viewBox: '0 0 ' + W + ' ' + H, 'aria-hidden': 'true', focusable: 'false' });
    for (var i = 0; i <= 4; i++) {
      var v = top * i / 4, y = sy(v);
      svg.appendChild(el('line', { x1: L, x2: W - R, y1: y, y2: y, 'class': 'grid' }));
      svg.appendChild(el('text', { x: L - 6, y: y + 4, 'text-anchor': 'end' }, fmt(v, c.unit)));
    }
    svg.appendChild(el('text', { x: L, y: H - 8 }, clock(t0)));
    svg.appendChild(el('text', { x: W - R, y: H - 8, 'text-anchor': 'end' }, clock(t1)));
    var legend = document.createElement('ul');
    legend.className = 'legend';
    var summary = [];
    series.forEach(function (s, k) {
      var pts = [], last = null;
      s.points.forEach(function (p) {
        if (p[1] === null) { return; }
        pts.push(sx(p[0]).toFixed(1) + ',' + sy(p[1]).toFixed(1));
        last = p[1];
      });
      var cls = 's' + (k % 3);
      if (pts.length === 1) { pts.push(pts[0]); }
      svg.appendChild(el('polyline', { points: pts.join(' '), 'class': cls, 'data-key': s.key }));
      var li = document.createElement('li');
      li.className = cls;
      li.textContent = s.label + ': ' + fmt(last, c.unit) + (c.unit === 's' ? '' : ' ' + c.unit);
      legend.appendChild(li);
      summary.push(li.textContent);
    });
    plot.appendChild(svg);
    plot.appendChild(legend);
    plot.setAttribute('aria-label', caption + ', latest: ' + summary.join('; '));
  }

  function poll(fig) {
    var status = fig.querySelector('.status');
    var which = fig.getAttribute('data-chart');
    fetch(fig.getAttribute('data-src'), { headers: { Accept: 'application/json' }, credentials: 'same-origin' })
      .then(function (r) {
        if (!r.ok) { throw new Error('HTTP ' + r.status); }
        return r.json();
      })
      .then(function (d) {
        draw(fig, d[which]);
        fig.setAttribute('data-updated', String(Date.now()));
        status.textContent = '';
      })
      .catch(function (e) {
        status.textContent = 'Live data unavailable (' + e.message + '); retrying.';
      });
  }

  function start() {
    var figs = document.querySelectorAll('figure.chart[data-src]');
    Array.prototype.forEach.call(figs, function (fig) {
      poll(fig);
      setInterval(function () { if (!document.hidden) { poll(fig); } }, 2000);
    });
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
