/** Per-symbol analytics: bar building, data quality, indicators, ML features, alert rules. Pure, no I/O. */
export * from './alerts.ts';
export * from './bar-builder.ts';
export * from './confirmation.ts';
export * from './features.ts';
export * from './indicators.ts';
export * from './pipeline.ts';
export * from './quality.ts';
export { RevisionTooOldError, type SeriesStateJson } from './series-state.ts';
