/**
 * A self-contained SVG line chart per dimension (no scripts, no external assets, like
 * bench/chart.ts): one panel per quantity, sizes on a log axis, one line per series, a dashed
 * reference line (1.0: flat), every point labelled with its value.
 */
import type { DimensionResult, Panel } from './result.js';

const esc = (s: string) =>
  s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
const COLORS = ['#2453c7', '#b3261e', '#1b7f3b', '#8a4fbf', '#c77c00', '#4a6b7a'];
const WIDTH = 760;
const PANEL_H = 220;
const LEFT = 70;
const RIGHT = 200;

const fmt = (v: number) =>
  Math.abs(v) >= 100 ? String(Math.round(v)) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2);
const sizeLabel = (n: number) =>
  n >= 1e6 && n % 1e6 === 0 ? `${n / 1e6}M` : n >= 1e3 && n % 1e3 === 0 ? `${n / 1e3}k` : String(n);

function panel(p: Panel, top: number, sizes: number[]): string {
  const plotW = WIDTH - LEFT - RIGHT;
  const plotH = PANEL_H - 50;
  const values = p.series.flatMap((s) => s.points.map(([, v]) => v)).filter((v) => v !== null);
  const all = [...(values as number[]), ...(p.reference !== undefined ? [p.reference] : []), 0];
  const max = Math.max(...all) * 1.15 || 1;
  const min = Math.min(...all);
  const lo = Math.log10(Math.min(...sizes));
  const hi = Math.log10(Math.max(...sizes));
  const x = (size: number) =>
    LEFT + (hi === lo ? plotW / 2 : ((Math.log10(size) - lo) / (hi - lo)) * plotW);
  const y = (v: number) => top + 20 + plotH - ((v - min) / (max - min || 1)) * plotH;
  const out: string[] = [];
  out.push(
    `<text x="${LEFT}" y="${top + 12}" font-size="13" font-weight="600">${esc(p.yLabel)}</text>`,
  );
  out.push(
    `<line x1="${LEFT}" y1="${y(min)}" x2="${LEFT + plotW}" y2="${y(min)}" stroke="#999"/>`,
    `<line x1="${LEFT}" y1="${top + 20}" x2="${LEFT}" y2="${y(min)}" stroke="#999"/>`,
  );
  for (const t of [min, (min + max) / 2, max])
    out.push(
      `<text x="${LEFT - 6}" y="${(y(t) + 4).toFixed(1)}" font-size="10" text-anchor="end" fill="#555">${fmt(t)}</text>`,
    );
  for (const size of sizes)
    out.push(
      `<text x="${x(size).toFixed(1)}" y="${y(min) + 14}" font-size="10" text-anchor="middle" fill="#555">${sizeLabel(size)}</text>`,
    );
  if (p.reference !== undefined)
    out.push(
      `<line x1="${LEFT}" y1="${y(p.reference).toFixed(1)}" x2="${LEFT + plotW}" y2="${y(p.reference).toFixed(1)}" stroke="#777" stroke-dasharray="4 4"/>`,
    );
  p.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length] as string;
    const pts = s.points.filter((pt): pt is [number, number] => pt[1] !== null);
    if (pts.length > 1)
      out.push(
        `<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.map(([sz, v]) => `${x(sz).toFixed(1)},${y(v).toFixed(1)}`).join(' ')}"/>`,
      );
    for (const [sz, v] of pts)
      out.push(
        `<circle cx="${x(sz).toFixed(1)}" cy="${y(v).toFixed(1)}" r="3" fill="${color}"/>`,
        `<text x="${(x(sz) + 4).toFixed(1)}" y="${(y(v) - 5).toFixed(1)}" font-size="9" fill="${color}">${fmt(v)}</text>`,
      );
    out.push(
      `<rect x="${WIDTH - RIGHT + 12}" y="${top + 26 + i * 18}" width="10" height="10" fill="${color}"/>`,
      `<text x="${WIDTH - RIGHT + 26}" y="${top + 35 + i * 18}" font-size="11">${esc(s.name)}</text>`,
    );
  });
  return out.join('\n');
}

export function renderScaleChart(d: DimensionResult, subtitle: string): string {
  const sizes = d.rows.map((r) => Number(r.size));
  const height = 56 + d.panels.length * PANEL_H;
  const panels = d.panels.map((p, i) => panel(p, 48 + i * PANEL_H, sizes)).join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="system-ui, sans-serif" role="img">
<title>Gatehouse cost as the work grows: ${esc(d.title)}</title>
<rect width="100%" height="100%" fill="#fff"/>
<text x="10" y="22" font-size="16" font-weight="600">${esc(d.title)}: cost by ${esc(d.unit)} (log scale)</text>
<text x="10" y="40" font-size="11" fill="#555">${esc(subtitle)}</text>
${panels}
</svg>
`;
}
