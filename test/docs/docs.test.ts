// The docs stay true to what runs: the examples use every setting and load, the configuration
// page names every key and environment variable, and every `vipdns ...` command the docs show exists.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { SETTINGS, loadConfig } from '../../src/config.js';
import { CLI, ROOT } from '../helpers/daemon.js';

const read = (...p: string[]): string => readFileSync(join(ROOT, ...p), 'utf8');
const EXAMPLES = ['vipdns.json', 'vipdns-etcd.json'];

test('the examples together use every setting, and each loads with the real loader', (t) => {
  const used = new Set<string>();
  for (const f of EXAMPLES) {
    const file = join(ROOT, 'examples', f);
    for (const k of Object.keys(JSON.parse(readFileSync(file, 'utf8')) as object)) used.add(k);
    t.notThrows(() => loadConfig({ file, env: {}, localAddresses: [] }), f);
  }
  t.deepEqual([...used].sort(), Object.keys(SETTINGS).sort());
});

test('docs/configuration.md names every setting and its environment variable', (t) => {
  const doc = read('docs', 'configuration.md');
  for (const [key, env] of Object.entries(SETTINGS)) {
    t.true(doc.includes(`\`${key}\``), `key ${key}`);
    t.true(doc.includes(env), `env ${env}`);
  }
});

/** `vipdns WORDS` written in the docs' code blocks: the command words, options and arguments left out. */
function documentedCommands(): Array<{ words: string[]; where: string }> {
  const files = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => join('docs', f))];
  const out: Array<{ words: string[]; where: string }> = [];
  for (const f of files) {
    const blocks = read(f).match(/```[a-z]*\n[\s\S]*?```/g) ?? [];
    for (const b of blocks) {
      for (const full of b.split('\n')) {
        const line = full.replace(/\s#.*$/, ''); // a shell comment is prose
        for (const m of line.matchAll(/(?:^|[\s;(`$])vipdns((?:\s+(?:--json|--api\s+\S+))*)\s+([a-z][a-z-]*)(?:\s+([a-z][a-z-]*))?/g)) {
          out.push({ words: [m[2]!, ...(m[3] ? [m[3]] : [])], where: `${f}: ${full.trim()}` });
        }
      }
    }
  }
  return out;
}

/** `vipdns WORDS --help`; ok when it is that command's own help (commander shows the parent's for an unknown one). */
const help = (words: string[]): { ok: boolean; out: string } => {
  const r = spawnSync(process.execPath, [CLI, ...words, '--help'], { encoding: 'utf8' });
  const out = r.stdout + r.stderr;
  return { ok: r.status === 0 && out.startsWith(`Usage: vipdns ${words.join(' ')} `), out };
};

test('every `vipdns` command written in README.md and docs/*.md exists', (t) => {
  const found = documentedCommands();
  t.true(found.length > 20, `only ${found.length} commands found: the pattern is wrong`);
  const groups = new Map<string, boolean>(); // command -> has subcommands
  const checked = new Set<string>();
  for (const { words, where } of found) {
    const [first, second] = words as [string, string | undefined];
    if (!groups.has(first)) {
      const h = help([first]);
      t.true(h.ok, `\`vipdns ${first}\` is not a command (${where}): ${h.out.split('\n')[0]}`);
      groups.set(first, /\nCommands:/.test(h.out));
    }
    if (!groups.get(first) || !second) continue;
    const key = `${first} ${second}`;
    if (checked.has(key)) continue;
    checked.add(key);
    const h = help([first, second]);
    t.true(h.ok, `\`vipdns ${key}\` is not a command (${where}): ${h.out.split('\n')[0]}`);
  }
});
