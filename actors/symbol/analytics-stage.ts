/**
 * The symbol actor's analytics stage: data quality before a trade touches a bar, and
 * indicators, ML features and alert evaluation on every closed (and forming) bar. It wraps the
 * pure `SymbolAnalytics` with what needs I/O: alert rules from the database, the warm-up from
 * stored candles, and the messages to publish (the actor publishes them, with retries and
 * before its snapshot, so a crash replays them with the same ids).
 *
 * Determinism on replay: quality judges freshness against the trade message's JetStream
 * timestamp (not the wall clock), and alert cooldowns run on the exchange clock (the bar's last
 * trade time), so replaying the same messages from a snapshot makes the same decisions and the
 * same firing ids; JetStream's duplicate window and `alert_events`' primary key drop repeats.
 */

import {
  type AlertFiring,
  type AlertRule,
  alertRuleSchema,
  QUALITY_CHECKS,
  SymbolAnalytics,
  type SymbolAnalyticsState,
  utcDayAnchor,
} from '../../analytics/index.ts';
import { listAlertRules } from '../../core/alert-rules-store.ts';
import type { Pool } from '../../core/db.ts';
import { calendarForSymbol, exchangeDate, marketState } from '../../core/market-hours.ts';
import {
  type Bar,
  encodeJson,
  msgIds,
  type QualityReport,
  SCHEMA_VERSION,
  type SourceBar,
  subjects,
  type Timeframe,
  type Trade,
  type TradeSource,
} from '../../core/protocol/index.ts';

export interface Publication {
  subject: string;
  data: Uint8Array;
  msgID?: string;
}

export interface AnalyticsStageState {
  analytics: SymbolAnalyticsState;
  /** Quality counters already reported (the next report carries the difference). */
  reported: {
    checked: number;
    accepted: number;
    quarantined: Record<string, number>;
    flagged: Record<string, number>;
  };
}

export interface QualityVerdict {
  good: Trade[];
  quarantined: { trade: Trade; check: string; reason: string }[];
  flagged: number;
}

function sessionTools(
  ex: string,
  sym: string,
): {
  anchor: (t: number) => number;
  isMarketOpen: (t: number) => boolean;
} {
  const cal = calendarForSymbol(sym, ex);
  if (cal === '24x7') return { anchor: utcDayAnchor, isMarketOpen: () => true };
  // Equities: VWAP restarts with each session (the exchange's local trading date).
  return {
    anchor: (t) => Date.parse(`${exchangeDate(cal, t)}T00:00:00Z`) / 86_400_000,
    isMarketOpen: (t) => marketState(cal, t).open,
  };
}

export class AnalyticsStage {
  private analytics: SymbolAnalytics;
  private reported: AnalyticsStageState['reported'];
  rulesCount = 0;

  constructor(
    private readonly ex: string,
    private readonly sym: string,
    private readonly quality: Record<string, unknown>,
    state?: AnalyticsStageState,
  ) {
    this.analytics = this.build(state?.analytics);
    const stats = this.analytics.quality.stats();
    this.reported = state?.reported ?? {
      checked: stats.checked,
      accepted: stats.accepted,
      quarantined: { ...stats.quarantined },
      flagged: { ...stats.flagged },
    };
  }

  private build(state?: SymbolAnalyticsState): SymbolAnalytics {
    const opts = {
      exchange: this.ex,
      symbol: this.sym,
      quality: this.quality,
      ...sessionTools(this.ex, this.sym),
    };
    return state ? SymbolAnalytics.fromState(state, opts) : new SymbolAnalytics(opts);
  }

  /** Whether state came from a snapshot (else the caller warms up from stored bars). */
  static restorable(x: unknown): x is AnalyticsStageState {
    const s = x as AnalyticsStageState | undefined;
    return !!s && typeof s === 'object' && s.analytics?.v === 1 && typeof s.reported === 'object';
  }

  /** Loads this symbol's enabled rules. */
  async loadRules(pool: Pool): Promise<void> {
    const stored = await listAlertRules(pool, { exchange: this.ex, symbol: this.sym, enabled: true });
    const rules: AlertRule[] = [];
    for (const { rule } of stored) {
      const parsed = alertRuleSchema.safeParse(rule);
      if (parsed.success) rules.push(parsed.data);
    }
    this.analytics.setRules(rules);
    this.rulesCount = rules.length;
  }

  /** Reads the newest stored closed bars of every timeframe so indicators are right at once. */
  async warmUp(pool: Pool, bars: number): Promise<number> {
    if (bars <= 0) return 0;
    const { rows } = await pool.query(
      `SELECT timeframe, ts, open, high, low, close, volume, trades, gap, revision, first_trade_at, last_trade_at
         FROM (SELECT *, row_number() OVER (PARTITION BY timeframe ORDER BY ts DESC) AS k
                 FROM candles WHERE exchange = $1 AND symbol = $2) c
        WHERE k <= $3 ORDER BY timeframe, ts`,
      [this.ex, this.sym, bars],
    );
    const byTf: Partial<Record<Timeframe, Bar[]>> = {};
    for (const r of rows) {
      const t = (r.ts as Date).getTime();
      const list = byTf[r.timeframe as Timeframe] ?? [];
      byTf[r.timeframe as Timeframe] = list;
      list.push({
        v: SCHEMA_VERSION,
        ex: this.ex,
        sym: this.sym,
        tf: r.timeframe,
        t,
        o: r.open,
        h: r.high,
        l: r.low,
        c: r.close,
        vol: r.volume,
        n: r.trades,
        closed: true,
        rev: r.revision,
        gap: r.gap,
        ft: r.first_trade_at?.getTime() ?? t,
        lt: r.last_trade_at?.getTime() ?? t,
      });
    }
    this.analytics.warm(byTf);
    return rows.length;
  }

  /**
   * Judges the trades of one published message not seen before; `message` is its stream
   * sequence and `now` its stream time (quality confirms a real move over several messages).
   */
  judge(
    trades: readonly Trade[],
    source: TradeSource,
    now: number,
    message: number,
    seen: (id: string) => boolean,
  ): QualityVerdict {
    const good: Trade[] = [];
    const quarantined: QualityVerdict['quarantined'] = [];
    let flagged = 0;
    for (const t of trades) {
      if (seen(t.id)) {
        good.push(t); // the bar builder drops it as a duplicate; judging it twice would skew the stats
        continue;
      }
      const r = this.analytics.checkTrade(t, source, now, message);
      if (r.ok) {
        good.push(t);
        if (r.flags?.length) flagged++;
      } else quarantined.push({ trade: t, check: r.check, reason: r.reason });
    }
    return { good, quarantined, flagged };
  }

  /** Judges the source bars of one published message like `judge` does trades. */
  judgeBars(
    bars: readonly SourceBar[],
    now: number,
    message: number,
    seen: (t: number) => boolean,
  ): { good: SourceBar[]; quarantined: { bar: SourceBar; check: string; reason: string }[] } {
    const good: SourceBar[] = [];
    const quarantined: { bar: SourceBar; check: string; reason: string }[] = [];
    for (const b of bars) {
      if (seen(b.t)) {
        good.push(b); // a repeat: the bar builder drops it
        continue;
      }
      const r = this.analytics.checkSourceBar(b, now, message);
      if (r.ok) good.push(b);
      else quarantined.push({ bar: b, check: r.check, reason: r.reason });
    }
    return { good, quarantined };
  }

  get qualityScore(): number {
    return this.analytics.quality.qualityScore;
  }

  /** Counts since the last report, as a report (attached to the next first-version 1m bar). */
  private takeQualityReport(): QualityReport | null {
    const now = this.analytics.quality.stats();
    const prev = this.reported;
    const trades = now.checked - prev.checked;
    if (trades === 0) return null;
    const checks: QualityReport['checks'] = {};
    for (const c of QUALITY_CHECKS) {
      const quarantined = now.quarantined[c] - (prev.quarantined[c] ?? 0);
      const flagged = now.flagged[c] - (prev.flagged[c] ?? 0);
      if (quarantined || flagged) checks[c] = { quarantined, flagged };
    }
    this.reported = {
      checked: now.checked,
      accepted: now.accepted,
      quarantined: { ...now.quarantined },
      flagged: { ...now.flagged },
    };
    return { trades, accepted: now.accepted - prev.accepted, checks, score: this.qualityScore };
  }

  /**
   * Attaches indicators and features (and, to first-version 1m bars, the quality report) to
   * closed bars in place; returns what else must be published: analytics updates of later bars
   * a revision changed, alert firings, and a quality event.
   */
  onClosed(bars: Bar[]): { publications: Publication[]; latest: Map<Timeframe, Record<string, unknown>> } {
    const publications: Publication[] = [];
    const latest = new Map<Timeframe, Record<string, unknown>>();
    for (const bar of bars) {
      const r = this.analytics.onClosedBar(bar, bar.lt);
      if (r.indicators) bar.ind = r.indicators as unknown as Record<string, number | null>;
      if (r.features) bar.feat = r.features as unknown as Record<string, unknown>;
      // The series' newest row: this bar's, or, after a revision of an older bar, the last one
      // it recomputed. A revision of the newest bar changes the latest features too.
      const newest = r.replayed.at(-1)?.features ?? r.features;
      if (newest) latest.set(bar.tf, { ...newest, tf: bar.tf });
      for (const u of r.replayed) {
        publications.push({
          subject: subjects.analyticsUpdate(bar.tf, this.ex, this.sym),
          data: encodeJson({
            v: SCHEMA_VERSION,
            ex: this.ex,
            sym: this.sym,
            tf: bar.tf,
            t: u.bar.t,
            ind: u.indicators,
            feat: u.features,
          }),
          msgID: msgIds.analyticsUpdate(bar.tf, this.ex, this.sym, u.bar.t, `${bar.t}:${bar.rev}`),
        });
      }
      publications.push(...this.firings(r.firings));
      if (bar.tf === '1m' && bar.rev === 0) {
        const q = this.takeQualityReport();
        if (q) {
          bar.q = q;
          publications.push({
            subject: subjects.quality(this.ex, this.sym),
            data: encodeJson({ v: SCHEMA_VERSION, ex: this.ex, sym: this.sym, t: bar.t, ...q }),
          });
        }
      }
    }
    return { publications, latest };
  }

  /** Previews indicators on forming bars in place; returns alert firings to publish. */
  onForming(bars: Bar[]): Publication[] {
    const out: Publication[] = [];
    for (const bar of bars) {
      const r = this.analytics.onFormingBar(bar, bar.lt);
      if (r.indicators) bar.ind = r.indicators as unknown as Record<string, number | null>;
      out.push(...this.firings(r.firings));
    }
    return out;
  }

  private firings(list: readonly AlertFiring[]): Publication[] {
    return list.map((f) => ({
      subject: subjects.alert(f.ruleId),
      data: encodeJson({ v: SCHEMA_VERSION, ...f }),
      msgID: msgIds.alert(f.id),
    }));
  }

  toState(): AnalyticsStageState {
    return { analytics: this.analytics.toState(), reported: this.reported };
  }
}
