export * from './clock.ts';
export * from './config.ts';
export * from './db.ts';
export * from './errors.ts';
export * from './log.ts';
export * from './metrics.ts';
export * from './nats.ts';
export * from './protocol/index.ts';
