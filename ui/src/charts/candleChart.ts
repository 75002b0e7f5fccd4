// The lightweight-charts (v5) instance behind CandleChart.vue: candles in the main pane, volume
// in a smaller pane below. It only draws what it is told; the merge rules live in candles.ts.
import {
  CandlestickSeries,
  ColorType,
  CrosshairMode,
  createChart,
  HistogramSeries,
  type IChartApi,
  type ISeriesApi,
} from 'lightweight-charts';
import type { CandleFieldsFragment as Candle } from '../graphql/generated/operations';
import { DARK_CHART_COLOURS as C, pricePrecision, type SeriesChange, toBar, toVolumePoint } from './candles';

/** Bars in view after a fresh load: enough context, still readable candles. */
const INITIAL_VISIBLE_BARS = 150;
/** Main pane : volume pane height. */
const PRICE_PANE_STRETCH = 3;
const VOLUME_PANE_STRETCH = 1;

export class CandleChart {
  private readonly chart: IChartApi;
  private readonly candles: ISeriesApi<'Candlestick'>;
  private readonly volume: ISeriesApi<'Histogram'>;
  private precision = -1;

  constructor(container: HTMLElement) {
    this.chart = createChart(container, {
      autoSize: true,
      layout: {
        background: { type: ColorType.Solid, color: C.background },
        textColor: C.text,
        fontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
        fontSize: 12,
        panes: { separatorColor: C.border, separatorHoverColor: 'rgba(93, 107, 122, 0.3)' },
      },
      grid: { vertLines: { color: C.grid }, horzLines: { color: C.grid } },
      crosshair: {
        mode: CrosshairMode.Normal,
        vertLine: { color: C.crosshair },
        horzLine: { color: C.crosshair },
      },
      rightPriceScale: { borderColor: C.border },
      timeScale: { borderColor: C.border, timeVisible: true, secondsVisible: false, rightOffset: 6 },
    });
    this.candles = this.chart.addSeries(CandlestickSeries, {
      upColor: C.up,
      downColor: C.down,
      wickUpColor: C.up,
      wickDownColor: C.down,
      borderVisible: false,
    });
    // Pane index 1 creates the volume pane; it gets its own price scale there.
    this.volume = this.chart.addSeries(
      HistogramSeries,
      { priceFormat: { type: 'volume' }, priceLineVisible: false, lastValueVisible: true },
      1,
    );
    const [pricePane, volumePane] = this.chart.panes();
    pricePane?.setStretchFactor(PRICE_PANE_STRETCH);
    volumePane?.setStretchFactor(VOLUME_PANE_STRETCH);
  }

  apply(change: SeriesChange): void {
    if (change.type === 'reset') {
      this.setBars(change.bars, change.fit);
      return;
    }
    this.candles.update(toBar(change.candle), change.historical);
    this.volume.update(toVolumePoint(change.candle), change.historical);
  }

  setBars(bars: readonly Candle[], fit: boolean): void {
    this.applyPrecision(pricePrecision(bars));
    this.candles.setData(bars.map(toBar));
    this.volume.setData(bars.map(toVolumePoint));
    if (!fit) return;
    const n = bars.length;
    if (n > INITIAL_VISIBLE_BARS) {
      this.chart.timeScale().setVisibleLogicalRange({ from: n - INITIAL_VISIBLE_BARS, to: n + 6 });
    } else {
      this.chart.timeScale().fitContent();
    }
  }

  destroy(): void {
    this.chart.remove();
  }

  private applyPrecision(precision: number): void {
    if (precision === this.precision) return;
    this.precision = precision;
    this.candles.applyOptions({ priceFormat: { type: 'price', precision, minMove: 10 ** -precision } });
  }
}
