import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

/** A small bar/line chart (uPlot, bundled). x = unix seconds. */
export function Chart({
  title,
  x,
  series,
  height = 180,
  format = (n) => n.toLocaleString(),
}: {
  title: string;
  x: number[];
  series: { label: string; values: number[]; color: string }[];
  height?: number;
  /** How totals are read out in the accessible summary. */
  format?: (n: number) => string;
}) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const opts: uPlot.Options = {
      width: Math.max(280, el.clientWidth),
      height,
      legend: { show: true },
      cursor: { show: true },
      scales: { x: { time: true } },
      axes: [{ stroke: '#3b4556', grid: { stroke: '#e4e8ee' } }, { stroke: '#3b4556', grid: { stroke: '#e4e8ee' } }],
      series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, fill: `${s.color}33`, width: 2 }))],
    };
    const plot = new uPlot(opts, [x, ...series.map((s) => s.values)], el);
    const ro = new ResizeObserver(() => plot.setSize({ width: Math.max(280, el.clientWidth), height }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.destroy();
    };
  }, [x, series, height]);
  return (
    <figure className="chart">
      <figcaption>{title}</figcaption>
      <div ref={ref} role="img" aria-label={`${title}: ${series.map((s) => `${s.label} total ${format(s.values.reduce((a, b) => a + b, 0))}`).join(', ')}`} />
    </figure>
  );
}
