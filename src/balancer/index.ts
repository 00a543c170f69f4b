// The balancer's public surface for the daemon and the CLI.
export { plan, replan, TaskIndex, type Plan, type PlanOptions } from './plan.js';
export { diff, units, isEmpty } from './diff.js';
export { withDraining } from './drain.js';
export { Balancer, type BalancerOptions, type BalancerStatus, type ChangeHint, type SyncReport, type SyncReason } from './reconcile.js';
export { createDriver, sandboxDrivers, DATAPLANE_KINDS, type DataplaneKind, type CreateDriverOptions, type CreatedDriver } from './factory.js';
export { Sandboxes, type Sandbox } from './sandboxes.js';
export { cleanupDataplane, type CleanupOptions, type CleanupReport } from './cleanup.js';
export { NftablesDriver, type NftablesDriverOptions } from './drivers/nftables.js';
export { NoneDriver } from './drivers/none.js';
export type * from './types.js';
