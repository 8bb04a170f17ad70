/** What each dimension of `--scale` hands to the report: a table, charts, its bound, and facts. */
import type { Dimension } from './options.js';
import type { Figure } from './rounds.js';

export type Cell = number | string | boolean | null;

export interface Column {
  key: string;
  label: string;
  /** Decimals shown (numbers); default 0. */
  digits?: number;
}

export interface Series {
  name: string;
  /** [size, value]; null: not measured (refused, or not applicable). */
  points: Array<[number, number | null]>;
}

export interface Panel {
  yLabel: string;
  series: Series[];
  /** Draw a dashed reference line at this value (1.0: flat). */
  reference?: number;
}

export interface DimensionResult {
  dimension: Dimension;
  title: string;
  /** What the size counts. */
  unit: string;
  /** The bound the curve follows, as docs/performance.md states it. */
  bound: string;
  columns: Column[];
  rows: Array<Record<string, Cell>>;
  panels: Panel[];
  notes: string[];
  seconds: number;
}

/** A series from figures: `pick` of each size's figure. */
export const seriesOf = (
  name: string,
  figures: readonly Figure[],
  pick: (f: Figure) => number | null,
): Series => ({ name, points: figures.map((f) => [f.size, pick(f)]) });

/** A series from table rows: the number at `key` of each row, by its `size`. */
export const seriesFromRows = (
  name: string,
  rows: ReadonlyArray<Record<string, Cell>>,
  key: string,
): Series => ({
  name,
  points: rows.map((r) => [Number(r.size), typeof r[key] === 'number' ? (r[key] as number) : null]),
});

export const round = (x: number | null | undefined, digits = 2): number | null =>
  x === null || x === undefined || !Number.isFinite(x) ? null : Number(x.toFixed(digits));
