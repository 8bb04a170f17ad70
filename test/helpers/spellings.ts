/** Every spelling a server might read as the header `name`: casings, and `_` for `-` (CGI). */
export function spellings(name: string): string[] {
  const upper = name.toUpperCase();
  const title = name.replace(
    /(^|-)([a-z])/g,
    (_m, sep: string, c: string) => sep + c.toUpperCase(),
  );
  const underscored = name.replaceAll('-', '_');
  const alternating = [...name].map((c, i) => (i % 2 ? c.toUpperCase() : c)).join('');
  return [...new Set([name, upper, title, underscored, underscored.toUpperCase(), alternating])];
}
