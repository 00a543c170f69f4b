// A small Dockerfile reader for the lint and build-step tests: instructions with line
// continuations joined and comments dropped, grouped by stage.
export interface Instruction {
  line: number;
  cmd: string; // upper case
  args: string;
}

export interface Stage {
  from: string;
  name?: string;
  instructions: Instruction[];
}

export function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let l = lines[i]!;
    if (/^\s*(#|$)/.test(l)) continue;
    while (/\\\s*$/.test(l) && i + 1 < lines.length) {
      i++;
      const next = lines[i]!;
      if (/^\s*#/.test(next)) continue;
      l = l.replace(/\\\s*$/, ' ') + next.trim();
    }
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(l);
    if (!m) throw new Error(`Dockerfile line ${start + 1}: cannot parse "${l}"`);
    const ins = { line: start + 1, cmd: m[1]!.toUpperCase(), args: m[2]!.trim() };
    if (ins.cmd === 'FROM') {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      stages.push({ from: f?.[1] ?? ins.args, ...(f?.[2] ? { name: f[2] } : {}), instructions: [] });
    }
    if (stages.length === 0) throw new Error(`Dockerfile line ${start + 1}: ${ins.cmd} before FROM`);
    stages[stages.length - 1]!.instructions.push(ins);
  }
  return stages;
}
