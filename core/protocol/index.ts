export * from './messages.ts';
export * from './names.ts';
export * from './symbols.ts';
export * from './timeframes.ts';
