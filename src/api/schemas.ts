// JSON schemas of the control API's requests: fastify validates every request against them before a
// handler runs (a wrong type is a 400 naming the field), and the OpenAPI document is made from them.
// The domain rules (a free address, a unique name, a subnet that fits) stay in the catalog.
const name = { type: 'string', minLength: 1, maxLength: 253 } as const;
const ip = { type: 'string', minLength: 1, maxLength: 64 } as const;
// Types and shapes here; ranges and enums are the catalog's, whose messages name the rule
// ("a port number from 1 to 65535", "unknown scheduler ... use rr, wrr, lc, sh").
const port = { type: 'integer' } as const;
const strings = { type: 'array', items: { type: 'string' }, maxItems: 1000 } as const;

const optIp = { anyOf: [ip, { type: 'string', maxLength: 0 }, { type: 'null' }] } as const;
const cidr = { type: 'string', minLength: 1, maxLength: 64 } as const;

const attachment = (addr: 'vip' | 'ip') =>
  ({
    anyOf: [
      name,
      {
        type: 'object',
        required: ['network'],
        additionalProperties: false,
        // `<addr>6`: the IPv6 address on a dual-stack network.
        properties: { network: name, [addr]: optIp, [`${addr}6`]: optIp, aliases: strings },
      },
    ],
  }) as const;

const portSpec = {
  type: 'object',
  required: ['target'],
  additionalProperties: false,
  properties: {
    target: port,
    protocol: { type: 'string' },
    published: { anyOf: [port, { type: 'string', const: 'auto' }, { type: 'null' }] },
    name: { anyOf: [{ type: 'string', maxLength: 63 }, { type: 'null' }] },
  },
} as const;

const healthCheck = {
  type: 'object',
  required: ['type', 'port'],
  additionalProperties: false,
  properties: {
    type: { type: 'string' },
    port,
    path: { type: 'string', maxLength: 1024 },
    intervalMs: { type: 'integer' },
    timeoutMs: { type: 'integer' },
    rise: { type: 'integer' },
    fall: { type: 'integer' },
  },
} as const;

const lb = { type: 'string' } as const;
const sticky = { description: 'seconds a client keeps its backend, 0 (off) to 86400' } as const;
const weight = { description: 'share of new connections, 0 (drain) to 10000' } as const;
const mode = { type: 'string' } as const;

/** A container's addresses on no network of ours (Docker's bridge, docker_gwbridge): they identify it as a DNS client. */
const clientAddresses = { type: 'array', maxItems: 16, items: ip } as const;

export const SCHEMAS = {
  createNetwork: {
    type: 'object',
    required: ['name', 'subnet'],
    additionalProperties: false,
    properties: {
      name,
      // One subnet, or one IPv4 and one IPv6 (dual stack); a gateway per subnet, placed by family.
      subnet: { anyOf: [cidr, { type: 'array', minItems: 1, maxItems: 2, items: cidr }] },
      gateway: { anyOf: [ip, { type: 'string', maxLength: 0 }, { type: 'array', maxItems: 2, items: ip }] },
      attachable: { type: 'boolean' },
      ingress: { type: 'boolean' },
    },
  },
  createService: {
    type: 'object',
    required: ['name', 'networks'],
    additionalProperties: false,
    properties: {
      name,
      networks: { type: 'array', minItems: 1, maxItems: 100, items: attachment('vip') },
      endpointMode: mode,
      aliases: strings,
      ports: { type: 'array', maxItems: 1000, items: portSpec },
      healthCheck,
      lb,
      sticky,
    },
  },
  updateService: {
    type: 'object',
    additionalProperties: false,
    properties: {
      networkAdd: { type: 'array', maxItems: 100, items: attachment('vip') },
      networkRm: strings,
      endpointMode: mode,
      aliasAdd: strings,
      aliasRm: strings,
      ports: { type: 'array', maxItems: 1000, items: portSpec },
      healthCheck: { anyOf: [healthCheck, { type: 'null' }] },
      lb,
      sticky,
    },
  },
  addTask: {
    type: 'object',
    required: ['service'],
    additionalProperties: false,
    properties: { service: name, ips: { type: 'array', maxItems: 100, items: ip }, name: { anyOf: [name, { type: 'null' }] }, weight, clientAddresses },
  },
  updateTask: { type: 'object', additionalProperties: false, properties: { weight } },
  addContainer: {
    type: 'object',
    required: ['name', 'networks'],
    additionalProperties: false,
    properties: { name, networks: { type: 'array', minItems: 1, maxItems: 100, items: attachment('ip') }, aliases: strings, clientAddresses },
  },
  explainQuery: {
    type: 'object',
    required: ['name', 'from'],
    properties: { name, from: ip, type: { type: 'string' }, port: { type: 'string', pattern: '^[0-9]{1,5}(/(tcp|udp|TCP|UDP))?$' } },
  },
  serviceQuery: { type: 'object', properties: { service: name } },
} as const;
