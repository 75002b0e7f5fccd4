/**
 * Settings of the data-quality checks (analytics/quality.ts describes each check): one schema with
 * named defaults, part of the configuration (`analytics.quality` in TICKMESH_CONFIG), so a typo
 * is rejected when a role starts rather than when each symbol actor builds its checker.
 */
import { z } from 'zod';

export const QUALITY_CHECKS = ['invalid', 'future', 'stale', 'jump', 'zscore', 'volume'] as const;
export type QualityCheck = (typeof QUALITY_CHECKS)[number];
export const QUALITY_ACTIONS = ['quarantine', 'flag', 'off'] as const;
export type QualityAction = (typeof QUALITY_ACTIONS)[number];

const action = (def: QualityAction) => z.enum(QUALITY_ACTIONS).default(def);
const window = z.number().int().min(2).max(100_000);

export const qualityConfigSchema = z
  .object({
    invalid: z
      .object({
        action: z.literal('quarantine').default('quarantine'),
        minTs: z.number().default(Date.UTC(2000, 0, 1)),
      })
      .strict()
      .prefault({}),
    future: z
      .object({ action: action('quarantine'), maxAheadMs: z.number().min(0).default(5_000) })
      .strict()
      .prefault({}),
    stale: z
      .object({
        action: action('flag'),
        liveMaxAgeMs: z.number().min(0).default(60_000),
        repairMaxAgeMs: z
          .number()
          .min(0)
          .default(7 * 86_400_000),
      })
      .strict()
      .prefault({}),
    jump: z
      .object({ action: action('quarantine'), pct: z.number().positive().default(10) })
      .strict()
      .prefault({}),
    zscore: z
      .object({
        action: action('flag'),
        sigma: z.number().positive().default(3),
        window: window.default(100),
        minHistory: z.number().int().min(2).default(20),
        minRelStd: z.number().min(0).default(0.0005),
      })
      .strict()
      .prefault({}),
    volume: z
      .object({
        /** What an amount above `factor` × the rolling mean gets. */
        action: action('flag'),
        factor: z.number().positive().default(100),
        /**
         * Above this multiple a trade is quarantined whatever `action` says (unless it is off):
         * real markets do print the odd 100–250× trade (recorded Binance XRP/ETH: 2 in 12,477),
         * which must stay in the bars; a 1000× one is a feed error. Null: no hard limit.
         */
        quarantineFactor: z.number().positive().nullable().default(500),
        window: window.default(100),
        minHistory: z.number().int().min(1).default(20),
      })
      .strict()
      .prefault({}),
    /**
     * Consecutive same-side price rejections accepted as a real move, and consecutive volume
     * rejections accepted as a new normal size (0 = never)...
     */
    confirmAfter: z.number().int().min(0).default(3),
    /**
     * ...provided they came in at least this many distinct published messages: one message
     * (a feed bug, a stolen exchange credential) cannot move a bar however many trades it holds...
     */
    confirmMessages: z.number().int().min(1).default(3),
    /**
     * ...spread over at least this long, from the run's first outlier to the confirming one, on
     * the stream clock (the time JetStream stored each message; replayed history: trade time).
     */
    confirmSpanMs: z.number().int().min(0).default(1000),
    scoreHalfLife: z.number().positive().default(200),
  })
  .strict();
export type QualityConfig = z.infer<typeof qualityConfigSchema>;
