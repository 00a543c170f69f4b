// Real DNS peers on loopback for tests: unbound and dnsmasq with configs written into temp
// dirs (never system config, never port 53), and tiny node servers for "slow" and "large
// answer" upstreams. Everything binds 127.0.0.1 and is killed by the test that started it.
import { type ChildProcess, spawn } from 'node:child_process';
import * as dgram from 'node:dgram';
import { writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import * as packet from 'dns-packet';
import { removeDir, run, tempDir } from './daemon.js';

export interface Peer {
  port: number;
  stop(): Promise<void>;
}

/** A port free for both UDP and TCP on 127.0.0.1 (racy by nature; good enough for tests). */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((res, rej) => {
      const s = net.createServer();
      s.once('error', rej);
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => res(p));
      });
    });
    const ok = await new Promise<boolean>((res) => {
      const u = dgram.createSocket('udp4');
      u.once('error', () => res(false));
      u.bind(port, '127.0.0.1', () => u.close(() => res(true)));
    });
    if (ok) return port;
  }
}

async function waitForDns(port: number, name: string, proc: ChildProcess, logs: string[]): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`peer exited ${proc.exitCode}: ${logs.join('')}`);
    const r = await run('dig', ['@127.0.0.1', '-p', String(port), '+time=1', '+tries=1', name]);
    if (/status: [A-Z]+/.test(r.stdout)) return; // any reply: it is up
    await new Promise((r2) => setTimeout(r2, 100));
  }
  throw new Error(`peer on ${port} did not answer ${name}: ${logs.join('')}`);
}

function spawnPeer(cmd: string, args: string[]): { proc: ChildProcess; logs: string[]; stop: () => Promise<void> } {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: string[] = [];
  proc.stdout!.on('data', (c: Buffer) => logs.push(c.toString()));
  proc.stderr!.on('data', (c: Buffer) => logs.push(c.toString()));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  return {
    proc,
    logs,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
  };
}

/** unbound answering only local data: "." is a static zone, so it never recurses off the host. */
export async function startUnbound(localData: string[], zones: string[] = []): Promise<Peer> {
  const dir = tempDir('vipdns-unbound-');
  const port = await freePort();
  const conf = [
    'server:',
    '  interface: 127.0.0.1',
    `  port: ${port}`,
    '  do-daemonize: no',
    '  chroot: ""',
    '  username: ""',
    `  directory: "${dir}"`,
    '  pidfile: ""',
    '  use-syslog: no',
    '  logfile: ""',
    '  verbosity: 0',
    '  num-threads: 1',
    '  do-ip6: no',
    '  access-control: 127.0.0.0/8 allow',
    '  module-config: "iterator"',
    '  local-zone: "." static',
    ...zones.map((z) => `  local-zone: "${z}" static`),
    ...localData.map((d) => `  local-data: "${d}"`),
    'remote-control:',
    '  control-enable: no',
    '',
  ].join('\n');
  const file = join(dir, 'unbound.conf');
  writeFileSync(file, conf);
  const p = spawnPeer('unbound', ['-d', '-c', file]);
  await waitForDns(port, '.', p.proc, p.logs);
  return {
    port,
    stop: async () => {
      await p.stop();
      removeDir(dir);
    },
  };
}

export async function startDnsmasq(args: string[]): Promise<Peer> {
  const port = await freePort();
  const p = spawnPeer('dnsmasq', [
    '--no-daemon',
    '--conf-file=/dev/null',
    `--port=${port}`,
    '--listen-address=127.0.0.1',
    '--bind-interfaces',
    '--no-resolv',
    '--no-hosts',
    '--pid-file=',
    '--user=root',
    ...args,
  ]);
  await waitForDns(port, 'localhost', p.proc, p.logs).catch(async (e: unknown) => {
    await p.stop();
    throw e;
  });
  return { port, stop: p.stop };
}

export interface ScriptedServer extends Peer {
  udpQueries: number;
  tcpQueries: number;
}

/**
 * A node DNS server with a scripted reply: `delayMs` before every answer (a slow upstream);
 * `udpTruncate` replies over UDP with TC and no records, so the full answer needs TCP.
 */
export async function startScripted(opts: { delayMs?: number; udpTruncate?: boolean; answers: (name: string) => packet.Answer[] }): Promise<ScriptedServer> {
  const port = await freePort();
  const udp = dgram.createSocket('udp4');
  const state = { udpQueries: 0, tcpQueries: 0 };
  const reply = (msg: Buffer, viaTcp: boolean): Buffer => {
    const q = packet.decode(msg);
    const name = q.questions?.[0]?.name ?? '';
    const answers = viaTcp || !opts.udpTruncate ? opts.answers(name) : [];
    return packet.encode({
      id: q.id,
      type: 'response',
      flags: packet.RECURSION_AVAILABLE | (q.flags ?? 0) & packet.RECURSION_DESIRED | (!viaTcp && opts.udpTruncate ? packet.TRUNCATED_RESPONSE : 0),
      questions: q.questions,
      answers,
    });
  };
  udp.on('message', (msg, r) => {
    state.udpQueries++;
    setTimeout(() => {
      try {
        udp.send(reply(msg, false), r.port, r.address);
      } catch {
        /* stopped meanwhile */
      }
    }, opts.delayMs ?? 0);
  });
  await new Promise<void>((res) => udp.bind(port, '127.0.0.1', () => res()));
  const conns = new Set<net.Socket>();
  const tcp = net.createServer((s) => {
    conns.add(s);
    s.on('close', () => conns.delete(s));
    let buf = Buffer.alloc(0);
    s.on('error', () => s.destroy());
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        state.tcpQueries++;
        const out = reply(msg, true);
        const len = Buffer.alloc(2);
        len.writeUInt16BE(out.length);
        setTimeout(() => !s.destroyed && s.write(Buffer.concat([len, out])), opts.delayMs ?? 0);
      }
    });
  });
  await new Promise<void>((res) => tcp.listen(port, '127.0.0.1', () => res()));
  const server: ScriptedServer = {
    port,
    get udpQueries() {
      return state.udpQueries;
    },
    get tcpQueries() {
      return state.tcpQueries;
    },
    stop: async () => {
      for (const c of conns) c.destroy();
      await Promise.all([new Promise<void>((r) => udp.close(() => r())), new Promise<void>((r) => tcp.close(() => r()))]);
    },
  } as ScriptedServer;
  return server;
}
