import test from 'ava';
import { LoopbackVips, loopbackVips, parseLabelled } from '../../src/balancer/loopback-vips.js';
import type { Runner } from '../../src/balancer/drivers/exec.js';
import { emptyState } from '../../src/catalog/model.js';

test('only IPv4 VIPs of vip-mode services with ports are put on lo', (t) => {
  const s = emptyState();
  const svc = (name: string, mode: 'vip' | 'dnsrr', vip: string | undefined, ports: number) =>
    (s.services[name] = { id: name, name, aliases: [], endpointMode: mode, attachments: [{ network: 'n', ...(vip ? { vip } : {}) }], ports: Array.from({ length: ports }, (_, i) => ({ protocol: 'tcp' as const, target: 80 + i })), fwmark: 256, createdAt: '' });
  svc('web', 'vip', '10.0.9.2', 1);
  svc('noports', 'vip', '10.0.9.3', 0);
  svc('rr', 'dnsrr', undefined, 1);
  svc('v6', 'vip', 'fd00::2', 1);
  t.deepEqual(loopbackVips(s), ['10.0.9.2']);
});

test('ip output parsing keeps only our label', (t) => {
  const out = [
    '1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever',
    '1: lo    inet 10.0.9.2/32 scope global lo:vipdns\\       valid_lft forever preferred_lft forever',
    '1: lo    inet 10.0.9.9/32 scope global lo:vipdnsx\\       valid_lft forever preferred_lft forever',
  ].join('\n');
  t.deepEqual(parseLabelled(out), ['10.0.9.2']);
});

test('sync adds and removes in one ip -batch and leaves the rest alone', async (t) => {
  const calls: Array<{ args: string[]; input?: string }> = [];
  const runner: Runner = async (args, input) => {
    calls.push({ args, ...(input !== undefined ? { input } : {}) });
    if (args.includes('show')) return { code: 0, stdout: '1: lo inet 10.0.9.2/32 scope global lo:vipdns\n1: lo inet 10.0.9.5/32 scope global lo:vipdns\n', stderr: '' };
    return { code: 0, stdout: '', stderr: '' };
  };
  const r = await new LoopbackVips({ runner }).sync(['10.0.9.2', '10.0.9.3']);
  t.deepEqual(r, { added: ['10.0.9.3'], removed: ['10.0.9.5'] });
  t.is(calls.length, 2);
  t.is(calls[1]!.input, 'addr add 10.0.9.3/32 dev lo label lo:vipdns\naddr del 10.0.9.5/32 dev lo label lo:vipdns\n');
});
