export * from './actor.ts';
export * from './cell.ts';
export * from './kv-health.ts';
export * from './lifecycle.ts';
export * from './local-supervisor.ts';
export * from './mailbox.ts';
