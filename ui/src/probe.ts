// window.__tickmesh: a small read-only window into what the chart has received, so a browser
// test can assert "history loaded, live updates arriving" without reading canvas pixels.

export interface TickmeshProbe {
  /** "<exchange>:<symbol>:<timeframe>" the counters below belong to; null before a pick. */
  series: string | null;
  /** Closed bars the last history load returned for `series`. */
  candlesLoaded: number;
  /** Live candles applied to the chart for `series` (ignored stale ones are not counted). */
  liveUpdates: number;
  /** Open time (epoch ms, UTC) of the newest bar on the chart; null while it is empty. */
  lastBarTime: number | null;
}

declare global {
  interface Window {
    __tickmesh?: TickmeshProbe;
  }
}

function probe(): TickmeshProbe {
  window.__tickmesh ??= { series: null, candlesLoaded: 0, liveUpdates: 0, lastBarTime: null };
  return window.__tickmesh;
}

/** A new series starts counting from zero. */
export function resetProbe(series: string | null): void {
  Object.assign(probe(), { series, candlesLoaded: 0, liveUpdates: 0, lastBarTime: null });
}

export function recordHistory(count: number, lastBarTime: number | null): void {
  Object.assign(probe(), { candlesLoaded: count, lastBarTime });
}

export function recordLiveUpdate(lastBarTime: number | null): void {
  const p = probe();
  p.liveUpdates += 1;
  p.lastBarTime = lastBarTime;
}

/** Installs the probe at start-up so a test can poll it before the first data arrives. */
export function installProbe(): void {
  probe();
}
