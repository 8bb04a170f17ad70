import { parseDocument } from 'yaml';
import { ConfigError } from './config.js';

/**
 * The configuration files (the gateway's routes file, the session-service's identity sources
 * file): YAML or JSON (JSON is YAML), parsed one way, their problems worded one way.
 */

/** The file's data; throws ConfigError naming each syntax error by line and column. */
export function parseYamlConfig(text: string, source: string): unknown {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0)
    throw new ConfigError(
      doc.errors.map((e) => {
        const at = e.linePos?.[0];
        const message = (e.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
        return `${source}${at ? `:${at.line}:${at.col}` : ''}: ${message}`;
      }),
    );
  return doc.toJS();
}

/**
 * Where a problem is, for a person: `routes[2] (admin).path`. The entries of the top-level list
 * `list` are named by their `id` too, when they have one.
 */
export function problemPath(path: readonly PropertyKey[], data: unknown, list: string): string {
  let out = '';
  path.forEach((key, i) => {
    if (typeof key === 'number') {
      out += `[${key}]`;
      if (i === 1 && path[0] === list) {
        const id = (data as Record<string, Array<{ id?: unknown }> | undefined>)?.[list]?.[key]?.id;
        if (typeof id === 'string' && id) out += ` (${id})`;
      }
    } else out += out ? `.${String(key)}` : String(key);
  });
  return out;
}
