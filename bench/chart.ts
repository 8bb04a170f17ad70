/** A self-contained SVG bar chart of one benchmark run (no scripts, no external assets). */
const esc = (s: string) =>
  s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');

export function renderChart(
  rows: Array<{ key: string; title: string; rps: number; p99: number; ok: boolean }>,
  ratios: Array<{
    name: string;
    value: number | null;
    target: number;
    lowerIsBetter?: boolean;
    informational?: boolean;
  }>,
): string {
  const width = 760;
  const barArea = 380;
  const rowH = 28;
  const top = 40;
  const max = Math.max(...rows.map((r) => r.rps), 1);
  const bars = rows
    .map((r, i) => {
      const y = top + i * rowH;
      const w = r.ok ? Math.max(2, (r.rps / max) * barArea) : 0;
      const label = r.ok ? `${Math.round(r.rps)} req/s · p99 ${r.p99} ms` : 'refused (errors)';
      const color = r.key === 'b' ? '#2453c7' : r.key === 'e' ? '#b3261e' : '#7a8699';
      return `<text x="10" y="${y + 18}" font-size="13">${esc(r.title)}</text>
<rect x="300" y="${y + 5}" width="${w.toFixed(1)}" height="18" fill="${color}" rx="3"/>
<text x="${(305 + w).toFixed(1)}" y="${y + 18}" font-size="12" fill="#333">${esc(label)}</text>`;
    })
    .join('\n');
  const ratioTop = top + rows.length * rowH + 30;
  const ratioLines = ratios
    .map((x, i) => {
      const value = x.value;
      const met = value !== null && (x.lowerIsBetter ? value <= x.target : value >= x.target);
      const shown = value === null ? 'n/a' : value.toFixed(2);
      const target = x.informational
        ? '(comparison)'
        : `(target ${x.lowerIsBetter ? '≤' : '≥'} ${x.target})`;
      const color = x.informational ? '#333' : met ? '#1b7f3b' : '#b3261e';
      return `<text x="10" y="${ratioTop + i * 22}" font-size="13" fill="${color}">${esc(x.name)}: ${shown} ${target}</text>`;
    })
    .join('\n');
  const height = ratioTop + ratios.length * 22 + 10;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" role="img">
<title>Gatehouse benchmark: requests/s and ratios measured in one run</title>
<rect width="100%" height="100%" fill="#fff"/>
<text x="10" y="24" font-size="16" font-weight="600">Gatehouse benchmark: requests/s (median of rounds), same run, same machine</text>
${bars}
${ratioLines}
</svg>
`;
}
