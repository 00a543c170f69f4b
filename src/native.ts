// Locating the project's native addons (build/Release/<name>.node), from src/ and dist/src/ alike.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The path of build/Release/<name>.node above this file, or `override` (tests point it elsewhere). */
export function addonPath(name: string, override?: string): string {
  if (override) return override;
  const file = join('build', 'Release', `${name}.node`);
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const p = join(dir, file);
    if (existsSync(p)) return p;
    const up = dirname(dir);
    if (up === dir) throw Object.assign(new Error(`native addon ${file} not found; run \`npm run build:native\``), { code: 'ENOADDON' });
    dir = up;
  }
}

export function requireAddon<T>(name: string, override?: string): T {
  return createRequire(import.meta.url)(addonPath(name, override)) as T;
}
