// The version of this vipdns, from its package.json (read once; dist/ sits one level below it).
import { readFileSync } from 'node:fs';

function read(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const v = (JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string });
      if (v.name === 'vipdns' && typeof v.version === 'string') return v.version;
    } catch {
      /* try the next place */
    }
  }
  return 'unknown';
}

export const VERSION = read();
