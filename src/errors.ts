// Every error a user can cause carries a stable code, so the API, the CLI and tests
// can tell them apart without parsing messages.
export type ErrorCode =
  | 'BAD_REQUEST'
  | 'BAD_CIDR'
  | 'BAD_IP'
  | 'BAD_NAME'
  | 'BAD_PORT'
  | 'DUPLICATE_NAME'
  | 'NOT_FOUND'
  | 'UNAUTHORIZED'
  | 'SUBNET_OVERLAP'
  | 'IP_OUTSIDE_SUBNET'
  | 'IP_IN_USE'
  | 'IP_RESERVED'
  | 'SUBNET_EXHAUSTED'
  | 'PORTS_EXHAUSTED'
  | 'NETWORK_IN_USE'
  | 'NETWORK_NOT_ATTACHABLE'
  | 'NOT_ATTACHED'
  | 'CONFLICT'
  | 'STORE_FAILED'
  | 'CONFIG'
  | 'DATA_DIR_LOCKED'
  | 'UNAVAILABLE'
  | 'DATAPLANE_FAILED'
  | 'DATAPLANE_UNSUPPORTED'
  | 'DATAPLANE_BUSY'
  | 'INTERNAL';

const HTTP_STATUS: Record<ErrorCode, number> = {
  BAD_REQUEST: 400,
  BAD_CIDR: 400,
  BAD_IP: 400,
  BAD_NAME: 400,
  BAD_PORT: 400,
  DUPLICATE_NAME: 409,
  NOT_FOUND: 404,
  UNAUTHORIZED: 401,
  SUBNET_OVERLAP: 409,
  IP_OUTSIDE_SUBNET: 400,
  IP_IN_USE: 409,
  IP_RESERVED: 400,
  SUBNET_EXHAUSTED: 409,
  PORTS_EXHAUSTED: 409,
  NETWORK_IN_USE: 409,
  NETWORK_NOT_ATTACHABLE: 409,
  NOT_ATTACHED: 409,
  CONFLICT: 409,
  STORE_FAILED: 500,
  CONFIG: 400,
  DATA_DIR_LOCKED: 409,
  UNAVAILABLE: 503,
  DATAPLANE_FAILED: 500,
  DATAPLANE_UNSUPPORTED: 501,
  DATAPLANE_BUSY: 409,
  INTERNAL: 500,
};

export class VipdnsError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'VipdnsError';
    this.code = code;
  }
  get httpStatus(): number {
    return HTTP_STATUS[this.code];
  }
}

export function isVipdnsError(e: unknown): e is VipdnsError {
  return e instanceof VipdnsError;
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
