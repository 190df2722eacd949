import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

const DAY = 86_400;
/** Readable on the light and the dark theme (canvas text cannot use CSS variables). */
const AXIS = '#7a8596';
/** Tick steps for counts: never a fraction of a request. */
const WHOLE = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 2e6, 5e6, 1e7, 1e8, 1e9];
const dayLabel = (s: number) => new Date(s * 1000).toLocaleDateString(undefined, { day: 'numeric', month: 'short', timeZone: 'UTC' });

/**
 * Per-day bars (uPlot, bundled). x = unix seconds of UTC midnights, one bar per day: a day is
 * a bucket, so nothing is drawn between days. All series share one axis and one unit (draw
 * different units as separate charts); several series overlay in order, so draw a subset
 * (errors of requests) after its whole. The y axis starts at zero.
 */
export function Chart({
  title,
  x,
  series,
  height = 180,
  format = (n) => n.toLocaleString(),
  integer = true,
}: {
  title: string;
  x: number[];
  series: { label: string; values: number[]; color: string }[];
  height?: number;
  /** How values are read out (axis, legend and accessible summary). */
  format?: (n: number) => string;
  /** Counts (requests, tokens): whole-number ticks only. */
  integer?: boolean;
}) {
  const ref = useRef<HTMLDivElement>(null);
  // Callers pass the formatter inline: read it through a ref so a re-render does not redraw.
  const fmt = useRef(format);
  fmt.current = format;
  useEffect(() => {
    const format = (n: number) => fmt.current(n);
    const el = ref.current;
    if (!el) return;
    const bars = uPlot.paths.bars!({ size: [0.7, 40], align: 0 });
    const opts: uPlot.Options = {
      width: Math.max(280, el.clientWidth),
      height,
      legend: { show: true },
      cursor: { show: true, points: { show: false } },
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
      scales: {
        x: { time: true, range: (_u, min, max) => [min - DAY / 2, max + DAY / 2] },
        y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] },
      },
      axes: [
        { stroke: AXIS, grid: { show: false }, space: 44, incrs: [DAY, 2 * DAY, 7 * DAY, 14 * DAY], values: (_u, vals) => vals.map((v) => (v == null ? '' : dayLabel(v))) },
        { stroke: AXIS, grid: { stroke: 'rgba(128, 140, 156, 0.25)' }, size: 60, ...(integer ? { incrs: WHOLE } : {}), values: (_u, vals) => vals.map((v) => (v == null ? '' : format(v))) },
      ],
      series: [
        { label: 'Day', value: (_u, v) => (v == null ? '—' : dayLabel(v)) },
        ...series.map((s) => ({ label: s.label, stroke: s.color, fill: `${s.color}cc`, width: 1, paths: bars, points: { show: false }, value: (_u: uPlot, v: number | null) => (v == null ? '—' : format(v)) })),
      ],
    };
    const plot = new uPlot(opts, [x, ...series.map((s) => s.values)], el);
    const ro = new ResizeObserver(() => plot.setSize({ width: Math.max(280, el.clientWidth), height }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.destroy();
    };
  }, [x, series, height, integer]);
  return (
    <figure className="chart">
      <figcaption>{title}</figcaption>
      <div ref={ref} role="img" aria-label={`${title}: ${series.map((s) => `${s.label} total ${format(s.values.reduce((a, b) => a + b, 0))}`).join(', ')}`} />
    </figure>
  );
}
