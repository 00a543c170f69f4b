// Typed IPVS client: one generic netlink socket, family "IPVS" resolved via
// nlctrl, every call an ack'd request. Pure encoding lives in ipvs-codec.ts.
//
// Ownership rule: the daemon must only ever delete services it created.
// flush() removes *every* virtual service on the host (also other tools');
// it exists for tests and explicit operator commands, never for reconcile.
import { NetlinkChannel, type ChannelOptions, type Outcome, type Request, type Transport } from './channel.js';
import { NetlinkError } from './errors.js';
import type { NlMsg } from './nlmsg.js';
import { GENL_ID_CTRL, decodeFamily, encodeGetFamilyPayload, type GenlFamily } from './genl.js';
import {
  IPVS_GENL_NAME, decodeConfig, decodeDest, decodeInfo, decodeService, encodeDelDest, encodeDelService,
  encodeFlush, encodeGetConfig, encodeGetDests, encodeGetInfo, encodeGetService, encodeNewDest,
  encodeNewService, encodeSetConfig, encodeSetDest, encodeSetService, encodeZero, serviceFamily,
  serviceId, type Dest, type DestSpec, type IpvsInfo, type IpvsTimeouts, type Service, type ServiceKey,
  type ServiceSpec,
} from './ipvs-codec.js';
import { NetlinkSocket, type SocketOptions } from './netlink-socket.js';

export type DestKey = Pick<DestSpec, 'address' | 'port'>;

/** One mutation, for batch(). */
export type IpvsOp =
  | { op: 'addService'; service: ServiceSpec }
  | { op: 'updateService'; service: ServiceSpec }
  | { op: 'delService'; service: ServiceKey }
  | { op: 'addDest'; service: ServiceKey; dest: DestSpec }
  | { op: 'updateDest'; service: ServiceKey; dest: DestSpec }
  | { op: 'delDest'; service: ServiceKey; dest: DestKey };

export type OpResult = { ok: true } | { ok: false; error: NetlinkError };

/** Maps an op to its genl payload and a readable name for errors. Pure. */
export function encodeIpvsOp(o: IpvsOp): { payload: Buffer; op: string } {
  switch (o.op) {
    case 'addService':
      return { payload: encodeNewService(o.service), op: `IPVS NEW_SERVICE ${serviceId(o.service)}` };
    case 'updateService':
      return { payload: encodeSetService(o.service), op: `IPVS SET_SERVICE ${serviceId(o.service)}` };
    case 'delService':
      return { payload: encodeDelService(o.service), op: `IPVS DEL_SERVICE ${serviceId(o.service)}` };
    case 'addDest':
      return { payload: encodeNewDest(o.service, o.dest), op: `IPVS NEW_DEST ${serviceId(o.service)} ${destId(o.dest)}` };
    case 'updateDest':
      return { payload: encodeSetDest(o.service, o.dest), op: `IPVS SET_DEST ${serviceId(o.service)} ${destId(o.dest)}` };
    case 'delDest':
      return { payload: encodeDelDest(o.service, o.dest), op: `IPVS DEL_DEST ${serviceId(o.service)} ${destId(o.dest)}` };
  }
}

const destId = (d: DestKey): string => (d.address.includes(':') ? `[${d.address}]:${d.port}` : `${d.address}:${d.port}`);

export interface IpvsClientOptions extends ChannelOptions, SocketOptions {
  /** injected transport (tests); by default a real NETLINK_GENERIC socket */
  transport?: Transport;
  /** retries of a dump the kernel flagged as interrupted by concurrent changes */
  dumpRetries?: number;
}

export class IpvsClient {
  private constructor(
    private readonly channel: NetlinkChannel,
    /** the resolved "IPVS" family (id, version, ops) */
    readonly family: GenlFamily,
    private readonly dumpRetries: number,
  ) {}

  /** Opens a socket and resolves the IPVS family; ENOENT means the kernel has no IPVS. */
  static async open(opts: IpvsClientOptions = {}): Promise<IpvsClient> {
    const transport = opts.transport ?? NetlinkSocket.open(undefined, opts);
    const channel = new NetlinkChannel(transport, opts);
    try {
      const family = await resolveFamily(channel, IPVS_GENL_NAME);
      return new IpvsClient(channel, family, opts.dumpRetries ?? 3);
    } catch (e) {
      channel.close();
      throw e;
    }
  }

  close(): void {
    this.channel.close();
  }

  private req(payload: Buffer, op: string, dump = false): Request {
    return { type: this.family.id, payload, op, dump };
  }

  private async one(payload: Buffer, op: string): Promise<void> {
    await this.channel.request(this.req(payload, op));
  }

  private async dump<T>(payload: Buffer, op: string, decode: (m: NlMsg) => T): Promise<T[]> {
    for (let attempt = 0; ; attempt++) {
      try {
        const msgs = await this.channel.request(this.req(payload, op, true));
        return msgs.map(decode);
      } catch (e) {
        if (e instanceof NetlinkError && e.code === 'EINTR' && attempt < this.dumpRetries) continue;
        throw e;
      }
    }
  }

  async getInfo(): Promise<IpvsInfo> {
    const [msg] = await this.channel.request(this.req(encodeGetInfo(), 'IPVS GET_INFO'));
    if (!msg) throw new NetlinkError(61 /* ENODATA */, { op: 'IPVS GET_INFO' });
    return decodeInfo(msg);
  }

  /** Connection timeouts (seconds), as `ipvsadm -L --timeout` shows them. */
  async getTimeouts(): Promise<IpvsTimeouts> {
    const [msg] = await this.channel.request(this.req(encodeGetConfig(), 'IPVS GET_CONFIG'));
    if (!msg) throw new NetlinkError(61 /* ENODATA */, { op: 'IPVS GET_CONFIG' });
    return decodeConfig(msg);
  }

  /** Sets connection timeouts; omitted or 0 values are left unchanged by the kernel. */
  setTimeouts(t: Partial<IpvsTimeouts>): Promise<void> {
    return this.one(encodeSetConfig(t), 'IPVS SET_CONFIG');
  }

  listServices(): Promise<Service[]> {
    return this.dump<Service>(encodeGetService(), 'IPVS GET_SERVICE dump', decodeService);
  }

  /** The service, or undefined when the kernel has no such service (ESRCH/ENOENT). */
  async getService(key: ServiceKey): Promise<Service | undefined> {
    try {
      const [msg] = await this.channel.request(this.req(encodeGetService(key), `IPVS GET_SERVICE ${serviceId(key)}`));
      return msg ? decodeService(msg) : undefined;
    } catch (e) {
      if (e instanceof NetlinkError && (e.code === 'ESRCH' || e.code === 'ENOENT')) return undefined;
      throw e;
    }
  }

  /** EEXIST when it exists; ENOENT when the scheduler module does not exist. */
  addService(s: ServiceSpec): Promise<void> {
    return this.apply({ op: 'addService', service: s });
  }
  /** Replaces scheduler, persistence and flags; ESRCH when missing. */
  updateService(s: ServiceSpec): Promise<void> {
    return this.apply({ op: 'updateService', service: s });
  }
  /** ESRCH when missing. Deletes the service with all its destinations. */
  delService(key: ServiceKey): Promise<void> {
    return this.apply({ op: 'delService', service: key });
  }

  listDests(key: ServiceKey): Promise<Dest[]> {
    const fam = serviceFamily(key);
    return this.dump<Dest>(encodeGetDests(key), `IPVS GET_DEST dump ${serviceId(key)}`, (m) => decodeDest(m, fam));
  }
  /** EEXIST when present; ESRCH when the service is missing. */
  addDest(key: ServiceKey, d: DestSpec): Promise<void> {
    return this.apply({ op: 'addDest', service: key, dest: d });
  }
  /** ENOENT when the destination is missing. */
  updateDest(key: ServiceKey, d: DestSpec): Promise<void> {
    return this.apply({ op: 'updateDest', service: key, dest: d });
  }
  /** ENOENT when the destination is missing. */
  delDest(key: ServiceKey, d: DestKey): Promise<void> {
    return this.apply({ op: 'delDest', service: key, dest: d });
  }

  /** Zeroes counters of one service, or all services when key is omitted. */
  zero(key?: ServiceKey): Promise<void> {
    return this.one(encodeZero(key), 'IPVS ZERO');
  }

  /**
   * Deletes EVERY virtual service and destination on the host, including ones
   * other software created. The daemon must not call this during normal
   * operation: it deletes only services it owns (delService). For tests and
   * an explicit operator "reset".
   */
  flush(): Promise<void> {
    return this.one(encodeFlush(), 'IPVS FLUSH');
  }

  private async apply(o: IpvsOp): Promise<void> {
    const [r] = await this.batch([o]);
    if (r && !r.ok) throw r.error;
  }

  /**
   * Many mutations with few syscalls: requests are written up to maxBatch per
   * datagram and their acks read afterwards. Results are per op, in order; a
   * failed op does not stop later ones (the kernel handles each independently).
   */
  async batch(ops: readonly IpvsOp[]): Promise<OpResult[]> {
    const reqs = ops.map((o) => {
      const e = encodeIpvsOp(o);
      return this.req(e.payload, e.op);
    });
    const outcomes: Outcome[] = await this.channel.batch(reqs);
    return outcomes.map((r) => (r.ok ? { ok: true } : { ok: false, error: r.error }));
  }
}

/** CTRL_CMD_GETFAMILY; ENOENT when the family is not registered (module absent). */
export async function resolveFamily(channel: NetlinkChannel, name: string): Promise<GenlFamily> {
  const [msg] = await channel.request({ type: GENL_ID_CTRL, payload: encodeGetFamilyPayload(name), op: `nlctrl GETFAMILY ${name}` });
  if (!msg) throw new NetlinkError(2 /* ENOENT */, { op: `nlctrl GETFAMILY ${name}` });
  return decodeFamily(msg);
}

