"""The leaderboard as one self-contained HTML page (``v<N>/index.html``).

No server, no network: inline CSS, a small inline script that sorts the table, and SVG
charts drawn here (bar chart per metric with ±1 std error bars over seeds, main metric
against training time on a log axis). The output is a pure function of the leaderboard,
so a rebuild gives the same bytes. ``index.html#sort=<column>`` sorts by that column on
load (through the same click handler a user triggers), which the browser test uses.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

from ..evaluate.metrics import get, higher_is_better
from ..stats import TESTS
from .references import HEADERS as REFERENCE_HEADERS, cell_mark, intro as reproduction_intro, section_rows, sources
from .parity import intro as parity_intro
from .text import ENV_KEYS, LEAK, compute_line, fmt_p, legend, row_label, rules_facts, short_params, tuning_summary

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac", "#17becf", "#bcbd22", "#1f77b4", "#8c564b", "#d62728", "#2ca02c", "#9467bd", "#7f7f7f",
           "#aec7e8", "#ffbb78",
           # then matplotlib's tab20b: 40 distinct colours (lfm2k v2 has 34 rows, the cold boards 23)
           "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#5254a3", "#8ca252", "#bd9e39", "#ad494a",
           "#a55194", "#6b6ecf", "#b5cf6b", "#e7ba52", "#d6616b", "#ce6dbd", "#9c9ede", "#cedb9c", "#e7cb94",
           "#e7969c", "#de9ed6")

CSS = """
:root{--fg:#1d2330;--muted:#5d6677;--line:#dde2ea;--bg:#f6f7fb;--card:#fff;--accent:#3559c7;--best:#0b7a3e}
*{box-sizing:border-box}
body{margin:0;font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
color:var(--fg);background:var(--bg)}
header{background:linear-gradient(120deg,#1e2a52,#3559c7);color:#fff;padding:28px 40px 22px}
header h1{margin:0 0 4px;font-size:26px;font-weight:650;letter-spacing:.2px}
header h1 .ver{font-size:14px;font-weight:600;background:rgba(255,255,255,.18);border-radius:10px;
padding:2px 9px;margin-left:8px;vertical-align:middle}
header p{margin:0;max-width:980px;color:#dfe6ff}
.facts{display:flex;flex-wrap:wrap;gap:10px;margin-top:16px}
.fact{background:rgba(255,255,255,.12);border-radius:8px;padding:7px 12px;min-width:120px}
.fact b{display:block;font-size:16px;color:#fff}
.fact span{font-size:11.5px;color:#c9d4ff;text-transform:uppercase;letter-spacing:.5px}
main{padding:8px 40px 40px;max-width:1500px}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px 20px;margin:18px 0}
h2{font-size:17px;margin:0 0 8px}
h3{font-size:14px;margin:14px 0 6px}
.note{color:var(--muted);font-size:12.5px;margin:0 0 10px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;width:100%}
th,td{padding:6px 9px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th:first-child,td:first-child,th.text,td.text{text-align:left}
thead th{position:sticky;top:0;background:#eef1f8;font-weight:600;font-size:12.5px;cursor:pointer;
user-select:none}
thead th button{all:unset;cursor:pointer}
thead th[aria-sort=ascending] button::after{content:" \\25B2";font-size:10px;color:var(--accent)}
thead th[aria-sort=descending] button::after{content:" \\25BC";font-size:10px;color:var(--accent)}
thead th.main{color:var(--accent)}
tbody tr:hover{background:#f3f6ff}
td.best{color:var(--best);font-weight:700}
td .pm{color:var(--muted);font-size:11.5px;margin-left:2px}
td.best .pm{color:var(--best)}
td .sig{color:#c0392b;margin-left:1px}
td small{color:var(--muted)}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:7px;vertical-align:baseline}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:14px}
figure{margin:0;border:1px solid var(--line);border-radius:8px;padding:8px 10px 4px}
figcaption{font-weight:600;font-size:13px;margin-bottom:2px}
figcaption small{font-weight:400;color:var(--muted)}
svg{display:block;width:100%;height:auto}
figure svg{max-width:500px}
#tradeoff svg{max-width:1000px}
svg text{font:11px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;fill:#1d2330}
svg .axis{stroke:#9aa3b2;stroke-width:1}
svg .gridline{stroke:#e7eaf0;stroke-width:1}
svg .err{stroke:#1d2330;stroke-width:1.2}
svg .tick{fill:#5d6677;font-size:10px}
ul{margin:6px 0;padding-left:20px}
code{background:#f0f2f7;border-radius:4px;padding:1px 4px;font-size:12.5px}
pre{background:#1e2433;color:#e8ecf5;border-radius:8px;padding:12px 14px;overflow-x:auto}
footer{color:var(--muted);font-size:12px;padding:0 40px 30px}
"""

SCRIPT = """
(function () {
  var table = document.getElementById('board');
  if (!table) return;
  var tbody = table.tBodies[0];
  var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
  function value(row, i, numeric) {
    var v = row.cells[i].getAttribute('data-v');
    if (v === null || v === '') return null;
    return numeric ? parseFloat(v) : v;
  }
  function sortBy(i, dir) {
    var numeric = heads[i].getAttribute('data-type') === 'num';
    var rows = Array.prototype.slice.call(tbody.rows);
    rows.sort(function (a, b) {
      var x = value(a, i, numeric), y = value(b, i, numeric);
      if (x === null && y === null) return a.getAttribute('data-rank') - b.getAttribute('data-rank');
      if (x === null) return 1;
      if (y === null) return -1;
      var c = numeric ? x - y : x.localeCompare(y);
      return dir * c || a.getAttribute('data-rank') - b.getAttribute('data-rank');
    });
    rows.forEach(function (r) { tbody.appendChild(r); });
    heads.forEach(function (h) { h.removeAttribute('aria-sort'); });
    heads[i].setAttribute('aria-sort', dir > 0 ? 'ascending' : 'descending');
  }
  heads.forEach(function (th, i) {
    th.addEventListener('click', function () {
      var cur = th.getAttribute('aria-sort');
      var first = th.getAttribute('data-first') === 'asc' ? 1 : -1;
      var dir = cur === 'descending' ? 1 : cur === 'ascending' ? -1 : first;
      sortBy(i, dir);
    });
  });
  var m = /(?:^#|&)sort=([^&]+)/.exec(location.hash);
  if (m) {
    var key = decodeURIComponent(m[1]);
    heads.forEach(function (th) { if (th.getAttribute('data-key') === key) th.click(); });
  }
})();
"""


def _f(x: float, nd: int = 2) -> str:
    """Fixed formatting of SVG coordinates (no '-0.00')."""
    s = f"{x:.{nd}f}"
    return "0" if float(s) == 0 else s.rstrip("0").rstrip(".")


def nice_ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step - 1e-9) * step
    out, v = [], start
    while v <= hi + 1e-9 * step:
        out.append(round(v, 10))
        v += step
    return out


def _tick_label(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:.0f}"
    s = f"{v:.4f}".rstrip("0").rstrip(".")
    return s


def colors(lb) -> dict[str, str]:
    return {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(sorted(r.key for r in lb.rows))}


def bar_chart(lb, metric: str, color: dict[str, str], width: int = 420) -> str:
    rows = [r for r in lb.rows if metric in r.test]
    if not rows:
        return ""
    sign = 1 if higher_is_better(metric) else -1
    rows.sort(key=lambda r: (-sign * r.test[metric].mean, r.rank))
    left, right, top, bar_h, gap = 150, 58, 8, 15, 7
    height = top + len(rows) * (bar_h + gap) + 22
    plot_w = width - left - right
    hi = max(max(r.test[metric].mean + r.test[metric].std for r in rows), 1e-12)
    lo = min(0.0, min(r.test[metric].mean - r.test[metric].std for r in rows))
    ticks = nice_ticks(lo, hi * 1.02)
    hi = max(hi, ticks[-1])

    def x(v):
        return left + (v - lo) / (hi - lo) * plot_w

    out = [f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
           f'aria-label="{escape(metric)} by model" data-metric="{escape(metric)}">']
    axis_y = top + len(rows) * (bar_h + gap)
    for t in ticks:
        out.append(f'<line class="gridline" x1="{_f(x(t))}" y1="{top - 4}" x2="{_f(x(t))}" y2="{axis_y}"/>'
                   f'<text class="tick" x="{_f(x(t))}" y="{axis_y + 13}" text-anchor="middle">{_tick_label(t)}</text>')
    for i, r in enumerate(rows):
        s = r.test[metric]
        y = top + i * (bar_h + gap)
        x0, x1 = x(max(lo, 0.0)), x(s.mean)
        best = metric in r.best
        label = r.label if len(r.label) <= 23 else r.label[:22] + "…"
        weight = ' font-weight="700"' if best else ""
        stroke = ' stroke="#0b7a3e" stroke-width="2"' if best else ""
        out.append(
            f'<g class="bar" data-model="{escape(r.key)}"><title>{escape(r.label)}: {s.mean:.4f} ± {s.std:.4f} '
            f'({s.n} seeds)</title>'
            f'<text x="{left - 6}" y="{_f(y + bar_h - 3.5)}" text-anchor="end"{weight}>{escape(label)}</text>'
            f'<rect x="{_f(min(x0, x1))}" y="{y}" width="{_f(max(abs(x1 - x0), 0.5))}" height="{bar_h}" rx="2" '
            f'fill="{color[r.key]}"{stroke}/>')
        if s.std > 0:
            ea, eb, ym = x(s.mean - s.std), x(s.mean + s.std), y + bar_h / 2
            out.append(f'<path class="err" d="M{_f(ea)} {_f(ym)}H{_f(eb)}M{_f(ea)} {_f(ym - 4)}V{_f(ym + 4)}'
                       f'M{_f(eb)} {_f(ym - 4)}V{_f(ym + 4)}"/>')
        sig = r.marks.get(metric)
        mark = "†" if sig is not None and sig.significant else ""
        out.append(f'<text x="{_f(max(x(s.mean + s.std), x1) + 5)}" y="{_f(y + bar_h - 3.5)}">{s.mean:.4f}{mark}'
                   f'</text></g>')
    out.append(f'<line class="axis" x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}"/></svg>')
    return "".join(out)


@dataclass
class _Frame:
    """The scatter's plot area and axes: log10 training time on x, the metric on y."""

    left: int
    top: int
    pw: int
    ph: int
    xlo: int
    xhi: int
    ylo: float
    yhi: float
    yticks: list[float]

    def x(self, v: float) -> float:
        return self.left + (math.log10(max(v, 0.01)) - self.xlo) / (self.xhi - self.xlo) * self.pw

    def y(self, v: float) -> float:
        return self.top + (1 - (v - self.ylo) / (self.yhi - self.ylo)) * self.ph


def _frame(rows, m: str, width: int, height: int) -> _Frame:
    left, right, top, bottom = 64, 150, 16, 44
    xs = [math.log10(max(r.fit_s, 0.01)) for r in rows]
    xlo, xhi = math.floor(min(xs)), math.ceil(max(xs))
    if xhi - xlo < 1:
        xhi = xlo + 1
    ylo = min(r.test[m].mean - r.test[m].std for r in rows)
    yhi = max(r.test[m].mean + r.test[m].std for r in rows)
    pad = (yhi - ylo) * 0.08 or abs(yhi) * 0.1 or 0.1
    yt = nice_ticks(ylo - pad, yhi + pad, 5)
    return _Frame(left, top, width - left - right, height - top - bottom, xlo, xhi, min(yt[0], ylo - pad),
                  max(yt[-1], yhi + pad), yt)


def _axes(f: _Frame, m: str, height: int) -> list[str]:
    """Grid lines, ticks, axes and their titles."""
    left, top, pw, ph = f.left, f.top, f.pw, f.ph
    out = []
    for t in f.yticks:
        if f.ylo <= t <= f.yhi:
            out.append(f'<line class="gridline" x1="{left}" y1="{_f(f.y(t))}" x2="{left + pw}" y2="{_f(f.y(t))}"/>'
                       f'<text class="tick" x="{left - 6}" y="{_f(f.y(t) + 3.5)}" text-anchor="end">{_tick_label(t)}'
                       '</text>')
    for e in range(f.xlo, f.xhi + 1):
        for mult in ((1, 2, 5) if f.xhi - f.xlo <= 3 else (1,)):
            v = mult * 10 ** e
            if not 10 ** f.xlo <= v <= 10 ** f.xhi:
                continue
            out.append(f'<line class="gridline" x1="{_f(f.x(v))}" y1="{top}" x2="{_f(f.x(v))}" y2="{top + ph}"/>'
                       f'<text class="tick" x="{_f(f.x(v))}" y="{top + ph + 14}" text-anchor="middle">{_tick_label(v)}'
                       '</text>')
    out.append(f'<line class="axis" x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}"/>'
               f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}"/>'
               f'<text x="{left + pw / 2:.0f}" y="{height - 8}" text-anchor="middle">training time per run (s, log '
               f'scale)</text><text transform="translate(14 {top + ph / 2:.0f}) rotate(-90)" text-anchor="middle">'
               f'{escape(m)} (test)</text>')
    return out


# label offsets from a point, tried in order: beside it (right, left, above, below), else further down
# with a leader line
_LABEL_TRIES = [(9, 4, "start"), (-9, 4, "end"), (9, -8, "start"), (9, 16, "start"), (-9, -8, "end"),
                (-9, 16, "end")] + [(14, 4 + d * sgn, "start") for d in range(22, 200, 12) for sgn in (1, -1)]


def _points(rows, m: str, f: _Frame, color: dict[str, str], width: int) -> list[str]:
    """One point per model with its whisker and a label placed where it overlaps nothing."""
    pts = {r.key: (f.x(r.fit_s), f.y(r.test[m].mean)) for r in rows}
    boxes: list[tuple[float, float, float, float]] = [(x - 7, y - 7, x + 7, y + 7) for x, y in pts.values()]

    def free(b):
        return all(b[2] <= o[0] or o[2] <= b[0] or b[3] <= o[1] or o[3] <= b[1] for o in boxes) and \
            f.left <= b[0] and b[2] <= width - 2 and f.top - 4 <= b[1] and b[3] <= f.top + f.ph + 2

    out = []
    for r in sorted(rows, key=lambda r: (-r.test[m].mean, r.rank)):
        s = r.test[m]
        cx, cy = pts[r.key]
        w = 6.3 * len(r.label)
        for dx, dy, anchor in _LABEL_TRIES:
            x0 = cx + dx if anchor == "start" else cx + dx - w
            box = (x0, cy + dy - 10, x0 + w, cy + dy + 2)
            if free(box):
                break
        boxes.append(box)
        tx = cx + dx
        out.append(f'<g class="point" data-model="{escape(r.key)}"><title>{escape(r.label)}: {m} {s.mean:.4f} ± '
                   f'{s.std:.4f}, {r.fit_s:.1f} s</title>')
        if s.std > 0:
            out.append(f'<path class="err" d="M{_f(cx)} {_f(f.y(s.mean - s.std))}V{_f(f.y(s.mean + s.std))}"/>')
        if abs(dy) > 20:  # far from its point: a leader line says whose label it is
            out.append(f'<path d="M{_f(cx + 5)} {_f(cy)}L{_f(tx - 2)} {_f(cy + dy - 4)}" stroke="#9aa3b2" '
                       'stroke-width="0.8" fill="none"/>')
        end = ' text-anchor="end"' if anchor == "end" else ""
        out.append(f'<circle cx="{_f(cx)}" cy="{_f(cy)}" r="6" fill="{color[r.key]}" stroke="#fff" '
                   f'stroke-width="1.5"/><text x="{_f(tx)}" y="{_f(cy + dy)}"{end}>{escape(r.label)}</text></g>')
    return out


def scatter(lb, color: dict[str, str], width: int = 960, height: int = 460) -> str:
    """The main metric against training time (log axis), one labelled point per model."""
    m = lb.main_metric
    rows = [r for r in lb.rows if m in r.test]
    if not rows:
        return ""
    f = _frame(rows, m, width, height)
    return "".join([f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
                    f'aria-label="{escape(m)} against training time" id="scatter-plot">']
                   + _axes(f, m, height) + _points(rows, m, f, color, width) + ["</svg>"])


def _leak_mark(r) -> str:
    if not r.leaks:
        return ""
    return (f' <span class="sig" title="reads {escape(", ".join(r.leaks))}: derived from interactions beyond '
            f'the training split">{LEAK}</span>')


def _table(lb, color) -> str:
    cols = lb.columns
    head = ['<th data-type="num" data-key="rank" data-first="asc"><button type="button">#</button></th>',
            '<th class="text" data-type="text" data-key="model" data-first="asc"><button type="button">Model'
            '</button></th>']
    for c in cols:
        first = "desc" if higher_is_better(c) else "asc"
        cls = ' class="main"' if c == lb.main_metric else ""
        head.append(f'<th{cls} data-type="num" data-key="{escape(c)}" data-first="{first}"><button type="button">'
                    f'{escape(c)}</button></th>')
    head += ['<th data-type="num" data-key="fit_s" data-first="asc"><button type="button">Fit (s)</button></th>',
             '<th data-type="num" data-key="seeds" data-first="desc"><button type="button">Seeds</button></th>']
    body = []
    for r in lb.rows:
        cells = [f'<td data-v="{r.rank}">{r.rank}</td>',
                 f'<td class="text" data-v="{escape(r.label)}"><span class="swatch" style="background:'
                 f'{color[r.key]}"></span>{escape(row_label(lb, r))}{_leak_mark(r)} <small>{escape(r.distribution)} '
                 f'{escape(r.version)}</small></td>']
        for c in cols:
            s = r.test.get(c)
            if s is None:
                cells.append('<td data-v="">–</td>')
                continue
            cmp_ = r.marks.get(c)
            sig = '<span class="sig" title="significantly worse than the best">†</span>' if (
                cmp_ is not None and cmp_.significant) else ""
            if r.unconverged:
                sig += f'<span class="sig" title="not converged (seeds {r.unconverged})">‡</span>'
            sig += _reference_mark(r.references.get(c, []))
            title = f' title="p (Holm) = {cmp_.p_holm:.4g} vs best"' if cmp_ is not None else ""
            cls = ' class="best"' if c in r.best else ""
            cells.append(f'<td{cls} data-v="{s.mean:.8f}"{title}>{s.mean:.4f}<span class="pm">±{s.std:.4f}</span>'
                         f'{sig}</td>')
        cells += [f'<td data-v="{r.fit_s:.3f}">{r.fit_s:.1f}</td>', f'<td data-v="{len(r.seeds)}">{len(r.seeds)}</td>']
        body.append(f'<tr data-model="{escape(r.key)}" data-rank="{r.rank}">' + "".join(cells) + "</tr>")
    return ('<div class="scroll"><table id="board"><thead><tr>' + "".join(head) + "</tr></thead><tbody>"
            + "\n".join(body) + "</tbody></table></div>")


def _reference_mark(refs: list) -> str:
    """The cell's reproduction mark, its references in the tooltip."""
    if not refs:
        return ""
    tip = "; ".join(f"{ref.status}: {ref.value:.4f} ({'-' if ref.gap is None else f'{100 * ref.gap:+.1f}%'}), "
                    f"{ref.source}" for ref in refs)
    return f' <small class="ref" title="{escape(tip)}">{cell_mark(refs)}</small>'


def _stats_table(lb) -> str:
    m = lb.main_metric
    conf = int(round(lb.board["confidence"] * 100))
    head = ["Model", "mean", "std", f"{conf}% CI", "n"] + [f"p {t}" for t in TESTS] + [f"p Holm ({lb.board['test']})"]
    rows = []
    for r in lb.rows:
        s = r.test.get(m)
        if s is None:
            continue
        best = m in r.best
        ps = lb.main_tests.get(r.key, {})
        vals = [escape(r.label) + (" <small>(best)</small>" if best else ""), f"{s.mean:.4f}", f"{s.std:.4f}",
                f"[{s.ci_low:.4f}, {s.ci_high:.4f}]", str(s.n)]
        vals += ["–" if best else fmt_p(ps.get(t)) for t in TESTS]
        vals.append("–" if best else fmt_p(ps.get(lb.board["test"] + "_holm")))
        rows.append("<tr>" + "".join(f'<td{" class=text" if i == 0 else ""}>{v}</td>' for i, v in enumerate(vals))
                    + "</tr>")
    if not rows:
        return ""
    return ('<div class="scroll"><table><thead><tr>' + "".join(
        f'<th{" class=text" if i == 0 else ""}>{escape(h)}</th>' for i, h in enumerate(head))
        + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>")


def _header(lb, suite) -> list[str]:
    """The page head and the banner with the key facts."""
    ds, m = lb.dataset, lb.main_metric
    st = ds.get("stats", {})
    best = next((r for r in lb.rows if m in r.best), None)
    facts = [(f"{ds.get('name')} v{ds.get('version')}", "dataset")]
    if st:
        facts += [(f"{st['users']:,} / {st['items']:,}", "users / items"), (f"{st['interactions']:,}", "interactions")]
    facts += [(str(len(lb.rows)), "models"), (", ".join(map(str, suite.seeds)), "seeds"),
              ("held-out ratings", "rating track") if get(m).kind == "rating" else ("full ranking", "candidates"),
              (m, "main metric")]
    if best is not None:
        facts.append((f"{best.label} · {best.test[m].mean:.4f}", "best"))
    if lb.rules >= 2:
        facts.append((f"{lb.compute['compute_s']:,.0f} s", "compute"))
    track = '<span class="ver">fixed-budget track</span>' if lb.fixed_budget else ""
    return [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>mmbench leaderboard · {escape(f'{lb.suite} v{lb.version}')}</title>",
        f"<style>{CSS}</style></head><body>",
        f'<header><h1>{escape(lb.suite)}<span class="ver">v{lb.version}</span>{track}</h1>',
        f"<p>{escape(suite.data['suite'].get('description', '').strip())}</p>",
        '<div class="facts">' + "".join(f'<div class="fact"><b>{escape(v)}</b><span>{escape(k)}</span></div>'
                                        for v, k in facts) + "</div></header><main>",
    ]


def _figures(lb, color) -> list[str]:
    """Bar charts per metric, the time trade-off and the statistics of the main metric."""
    m = lb.main_metric
    charts = "".join(
        f'<figure><figcaption>{escape(c)}{" <small>(main)</small>" if c == m else ""}'
        f'{" <small>lower is better</small>" if not higher_is_better(c) else ""}</figcaption>'
        f'{bar_chart(lb, c, color)}</figure>'
        for c in lb.columns if any(c in r.test for r in lb.rows))
    return ['<section id="charts"><h2>Metrics by model</h2><p class="note">Bars: mean over seeds; whiskers: '
            '±1 std; bold label: best; †: significantly worse than the best.</p>',
            f'<div class="grid">{charts}</div></section>',
            f'<section id="tradeoff"><h2>{escape(m)} against training time</h2><p class="note">Each point '
            'is a model: mean test value (whisker ±1 std) against mean training time per run on the '
            'machines listed below.</p>', scatter(lb, color), "</section>",
            f'<section id="statistics"><h2>Statistics of {escape(m)}</h2><p class="note">Student-t '
            'confidence interval over seeds; two-sided p-values of each model against the best on per-user '
            'values averaged over seeds.</p>', _stats_table(lb), "</section>"]


def robustness_plot(lb, name: str, color: dict[str, str], width: int = 420, height: int = 250) -> str:
    """The main metric against the share p of items without ``name``: one line per model."""
    rows = [r for r in lb.rows if name in r.robustness]
    if not rows:
        return ""
    shares = lb.robustness["shares"]
    means = [s.mean for r in rows for s in r.robustness[name]]
    yt = nice_ticks(min(means), max(means), 4)
    left, top, pw, ph = 56, 10, width - 66, height - 52
    ylo, yhi = min(yt[0], min(means)), max(yt[-1], max(means))
    yhi = yhi if yhi > ylo else ylo + 1

    def xy(p: float, v: float) -> str:
        return f"{_f(left + p * pw)},{_f(top + (1 - (v - ylo) / (yhi - ylo)) * ph)}"

    out = [f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
           f'aria-label="{escape(lb.robustness["metric"])} against the share of items without {escape(name)}">']
    for t in yt:
        y = xy(0, t).split(",")[1]
        out.append(f'<line class="gridline" x1="{left}" y1="{y}" x2="{left + pw}" y2="{y}"/>'
                   f'<text class="tick" x="{left - 6}" y="{_f(float(y) + 3.5)}" text-anchor="end">{_tick_label(t)}'
                   "</text>")
    for p in shares:
        out.append(f'<text class="tick" x="{_f(left + p * pw)}" y="{top + ph + 14}" text-anchor="middle">{p:g}'
                   "</text>")
    out.append(f'<line class="axis" x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}"/>'
               f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}"/>'
               f'<text x="{left + pw / 2:.0f}" y="{height - 8}" text-anchor="middle">share p of items without '
               f"{escape(name)}</text>")
    for r in rows:
        pts = [xy(p, s.mean) for p, s in zip(shares, r.robustness[name])]
        out.append(f'<g><title>{escape(r.label)}: '
                   + ", ".join(f"p={p:g} {s.mean:.4f}" for p, s in zip(shares, r.robustness[name])) + "</title>"
                   f'<polyline fill="none" stroke="{color[r.key]}" stroke-width="2" points="{" ".join(pts)}"/>'
                   + "".join(f'<circle cx="{pt.split(",")[0]}" cy="{pt.split(",")[1]}" r="3" fill="{color[r.key]}"/>'
                             for pt in pts) + "</g>")
    return "".join(out + ["</svg>"])


def _robustness(lb, color) -> list[str]:
    """The robustness view: a plot per dropped name, the table and the models without a curve."""
    from .robustness import intro, table

    if not lb.robustness or not lb.rows:
        return []
    headers, rows, notes = table(lb)
    plots = "".join(f'<figure><figcaption>{escape(lb.robustness["metric"])} without {escape(k)}</figcaption>'
                    f"{robustness_plot(lb, k, color)}</figure>" for k in lb.robustness["keys"]
                    if any(k in r.robustness for r in lb.rows))
    keyed = "".join(f'<span class="swatch" style="background:{color[r.key]}"></span>{escape(r.label)} '
                    for r in lb.rows if r.robustness)
    body = "".join("<tr>" + "".join(f'<td class="text">{escape(c)}</td>' for c in row) + "</tr>" for row in rows)
    return ['<section id="robustness"><h2>Robustness to a missing modality</h2>'
            f'<p class="note">{escape(intro(lb))}</p><p class="note">{keyed}</p><div class="grid">{plots}</div>'
            '<div class="scroll"><table><thead><tr>' + "".join(f'<th class="text">{escape(h)}</th>' for h in headers)
            + f"</tr></thead><tbody>{body}</tbody></table></div>"
            + ("<ul>" + "".join(f"<li><b>{escape(label)}</b>: no curve ({escape(why)})</li>" for label, why in notes)
               + "</ul>" if notes else "") + "</section>"]


def _code(text: str) -> str:
    """Escaped text with its `backticked` parts as <code>."""
    parts = escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _tuning(lb, suite) -> list[str]:
    if lb.rules < 2 or not lb.rows:
        return []
    intro, rows = tuning_summary(lb, suite)
    return [f'<section id="tuning"><h2>Tuning</h2><p class="note">{escape(intro)}</p><ul>'
            + "".join(f"<li><b>{escape(label)}</b>: {escape(text)}</li>" for label, text in rows) + "</ul></section>"]


def _parity(lb) -> list[str]:
    from ..parity import table_rows
    from ..parity.report import HEADERS

    if not lb.parity:
        return []
    head = "".join(f'<th class="text">{escape(h)}</th>' for h in HEADERS)
    body = "".join("<tr>" + "".join(f'<td class="text">{escape(c)}</td>' for c in row) + "</tr>"
                   for row in table_rows(lb.parity))
    return [f'<section id="parity"><h2>Parity</h2><p class="note">{_code(parity_intro(lb))}</p><div class="scroll">'
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div></section>"]


def _reproduction(lb) -> list[str]:
    rows = section_rows(lb)
    if not rows and not lb.references_note:
        return []
    note = f'<p class="note">{escape(lb.references_note)}</p>' if lb.references_note else ""
    if not rows:
        return [f'<section id="reproduction"><h2>Reproduction</h2>{note}</section>']
    head = "".join(f'<th class="text">{escape(h)}</th>' for h in REFERENCE_HEADERS)
    body = "".join("<tr>" + "".join(f'<td class="text">{escape(c)}</td>' for c in row) + "</tr>" for row in rows)
    cited = "".join(f"<li>{_code(line)}</li>" for line in sources(lb))
    return [f'<section id="reproduction"><h2>Reproduction</h2>{note}<p class="note">{_code(reproduction_intro())}</p>'
            f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
            f"<h3>Sources</h3><ul>{cited}</ul></section>"]


def _protocol(lb, suite) -> list[str]:
    p = lb.protocol
    return [
        '<section id="protocol"><h2>Protocol</h2><ul>',
        f"<li>Dataset fingerprint <code>{escape(str(lb.dataset.get('fingerprint') or '-'))}</code></li>",
        f"<li>Candidates: {escape(p['candidates'])} items (full ranking, never sampled); masked at test: train"
        f"{' + valid' if p['mask_valid_at_test'] else ''} items</li>",
        f"<li>Fit on {escape(p['fit_on'])}; early stopping and model selection on {escape(p['selection'])} only; "
        f"searched models: candidates on seed(s) {escape(str(suite.search_seeds))}, the chosen one on every seed"
        "</li>",
        f"<li>Protocol hash <code>{escape(lb.protocol_hash)}</code></li>"
        + "".join(f"<li>{_code(fact)}</li>" for fact in rules_facts(lb)) + "</ul>",
        "<h3>Configurations</h3><ul>" + "".join(
            f"<li><b>{escape(r.label)}</b> (<code>{escape(r.model)}</code> from {escape(r.distribution)} "
            f"{escape(r.version)}, {escape(r.selection.get('method', 'fixed'))}): {escape(short_params(r.params))}"
            "</li>" for r in lb.rows) + "</ul></section>",
    ]


def _provenance(lb, suite) -> list[str]:
    """Environment, excluded records, how to reproduce, and the page's end."""
    parts = []
    if lb.environments:
        parts.append('<section id="environment"><h2>Environment</h2><div class="scroll"><table><thead><tr>'
                     + "".join(f'<th class="text">{k}</th>' for k in ENV_KEYS) + "</tr></thead><tbody>"
                     + "".join("<tr>" + "".join(f'<td class="text">{escape(str(e[k]))}</td>' for k in ENV_KEYS)
                               + "</tr>" for e in lb.environments) + "</tbody></table></div></section>")
    if lb.rejected or lb.failed:
        parts.append('<section id="excluded"><h2>Excluded records</h2><ul>'
                     + "".join(f"<li>rejected <code>{escape(a)}</code>: {escape(b)}</li>" for a, b in lb.rejected)
                     + "".join(f"<li>failed <code>{escape(a)}</code>: {escape(b)}</li>" for a, b in lb.failed)
                     + "</ul></section>")
    folder = f"leaderboards/{suite.folder.name}"
    return parts + [
        f'<section id="reproduce"><h2>Reproduce</h2><pre>mmbench suite run {escape(folder)}\n'
        f"mmbench leaderboard build {escape(folder)}\nmmbench leaderboard check {escape(folder)}"
        + (f"\nmmbench leaderboard reproduce {escape(folder)} --sample 3" if lb.rules >= 2 else "") + "</pre></section>",
        "</main><footer>Generated by mmbench from run records alone; rebuilding gives the same bytes.</footer>",
        f"<script>{SCRIPT}</script></body></html>", ""]


def to_html(lb, suite) -> str:
    color = colors(lb)
    parts = _header(lb, suite) + [
        '<section id="results"><h2>Results on the test split</h2>',
        f'<p class="note">Mean ± std over seeds; click a column to sort. {_code(legend(lb))}</p>',
    ] + ([f'<p class="note">{escape(compute_line(lb))}</p>'] if lb.rules >= 2 else []) + [
        _table(lb, color) if lb.rows else "<p>No accepted records yet.</p>",
        "</section>",
    ]
    if lb.rows:
        parts += _robustness(lb, color) + _figures(lb, color)
    return "\n".join(parts + _tuning(lb, suite) + _parity(lb) + _reproduction(lb) + _protocol(lb, suite)
                     + _provenance(lb, suite))
