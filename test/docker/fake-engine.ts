// A stand-in Docker engine on a unix socket for tests where no real one runs: serves
// GET /networks, GET /containers/json and a streaming GET /events from in-memory lists whose
// shapes were recorded from podman 4.3.1's Docker-compatible API (test/docker/fixtures/), and
// GET /services (a swarm manager's; 503 as on a worker when `services` is undefined) and
// GET /containers/ID/json (its State.Pid) as dockerd 20.10 answers them.
import * as http from 'node:http';
import { dirname, join } from 'node:path';
import type { DockerContainer, DockerNetwork, DockerService } from '../../src/catalog/sources/docker-types.js';
import { removeDir, tempDir } from '../helpers/daemon.js';

export class FakeEngine {
  networks: DockerNetwork[] = [];
  containers: DockerContainer[] = [];
  /** Swarm services; undefined: not a manager. */
  services: DockerService[] | undefined;
  /** Container ID → its init pid. */
  pids = new Map<string, number>();
  requests: string[] = [];
  readonly socket: string;
  private server: http.Server;
  private streams = new Set<http.ServerResponse>();

  constructor() {
    this.socket = join(tempDir('vipdns-fake-docker-'), 'docker.sock');
    this.server = http.createServer((req, res) => this.serve(req, res));
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(this.socket, r));
    return this;
  }

  /** Sends an event to every open /events stream (as podman does, one JSON object per line). */
  emit(type: string, action: string, id = 'x'): void {
    const ev = { status: action, id, Type: type, Action: action, Actor: { ID: id, Attributes: {} }, scope: 'local', time: Math.floor(Date.now() / 1000) };
    for (const s of this.streams) s.write(`${JSON.stringify(ev)}\n`);
  }

  /** Ends every event stream, as an engine restart does. */
  dropStreams(): void {
    for (const s of this.streams) s.end();
    this.streams.clear();
  }

  get streamCount(): number {
    return this.streams.size;
  }

  async stop(): Promise<void> {
    this.dropStreams();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
    removeDir(dirname(this.socket));
  }

  private serve(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://docker');
    this.requests.push(`${req.method} ${url.pathname}`);
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method === 'GET' && url.pathname === '/networks') return json(200, this.networks);
    if (req.method === 'GET' && url.pathname === '/containers/json') {
      const all = url.searchParams.get('all') === 'true' || url.searchParams.get('all') === '1';
      return json(200, all ? this.containers : this.containers.filter((c) => c.State === 'running'));
    }
    if (req.method === 'GET' && url.pathname === '/services') {
      return this.services ? json(200, this.services) : json(503, { message: 'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.' });
    }
    const inspect = /^\/containers\/([^/]+)\/json$/.exec(url.pathname);
    if (req.method === 'GET' && inspect) {
      const c = this.containers.find((x) => x.Id === inspect[1]);
      return c ? json(200, { Id: c.Id, State: { Status: c.State, Pid: c.State === 'running' ? this.pids.get(c.Id!) ?? 0 : 0 } }) : json(404, { message: `No such container: ${inspect[1]}` });
    }
    if (req.method === 'GET' && url.pathname === '/events') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders();
      this.streams.add(res);
      res.on('close', () => this.streams.delete(res));
      return;
    }
    json(404, { message: `page not found: ${url.pathname}`, response: 404 });
  }
}

let n = 0;
/** A container in the list shape podman returns (see fixtures/podman-4.3.1.json). */
export function container(name: string, nets: Record<string, { ip: string; aliases?: string[] }>, labels: Record<string, string> = {}, state = 'running'): DockerContainer {
  const id = (++n).toString(16).padStart(8, '0') + 'a75e20943822a5ba0478edb05f392ceb7c586218e6a1c2ebe58d16c07';
  const networks: NonNullable<NonNullable<DockerContainer['NetworkSettings']>['Networks']> = {};
  for (const [net, v] of Object.entries(nets)) {
    networks[net] = { NetworkID: net, IPAddress: state === 'running' ? v.ip : '', GlobalIPv6Address: '', Aliases: [...(v.aliases ?? []), id.slice(0, 12)] };
  }
  return { Id: id, Names: [`/${name}`], Labels: labels, State: state, Status: state === 'running' ? 'Up 2 seconds' : 'Exited (0) 1 second ago', NetworkSettings: { Networks: networks } };
}

export function network(name: string, subnet: string, gateway?: string): DockerNetwork {
  return { Name: name, Id: `${name}-id`, Scope: 'local', Driver: 'bridge', Attachable: false, IPAM: { Config: [{ Subnet: subnet, ...(gateway ? { Gateway: gateway } : {}) }] }, Labels: {} };
}
