// The agent page's chart: messages sent, received and failed per minute, and the AI latency on a second axis (uPlot,
// served from this origin out of node_modules: see src/dashboard/dashboard.routes.ts).
import uPlot from './vendor/uPlot.esm.js';

const HEIGHT = 260;
const COLORS = {
  sent: '#0a6b3d',
  received: '#1a56db',
  failed: '#b42318',
  latency: '#a15c00',
};

/** `[minute seconds[], sent[], received[], failed[], avg latency (ms or null)[], p95 latency[]]`, as uPlot takes it. */
export function toSeries(buckets) {
  return [
    buckets.map((b) => Date.parse(b.minute) / 1000),
    buckets.map((b) => b.sent),
    buckets.map((b) => b.received),
    buckets.map((b) => b.failed),
    buckets.map((b) => b.aiLatencyMs?.avg ?? null),
    buckets.map((b) => b.aiLatencyMs?.p95 ?? null),
  ];
}

/** One sentence of the whole window, for the figure's caption and screen readers. */
export function summarize(buckets) {
  let sent = 0;
  let received = 0;
  let failed = 0;
  let measured = 0;
  let latencySum = 0;
  let worstP95 = null;
  for (const b of buckets) {
    sent += b.sent;
    received += b.received;
    failed += b.failed;
    if (b.aiLatencyMs) {
      measured += b.aiLatencyMs.count;
      latencySum += b.aiLatencyMs.avg * b.aiLatencyMs.count;
      worstP95 = Math.max(worstP95 ?? 0, b.aiLatencyMs.p95);
    }
  }
  const minutes = buckets.length === 60 ? 'the last hour' : `the last ${buckets.length} minutes`;
  const counts = `In ${minutes}: ${sent} sent, ${received} received, ${failed} failed.`;
  const latency =
    measured === 0
      ? ' No AI calls.'
      : ` AI latency: ${Math.round(latencySum / measured)} ms on average over ${measured} ${
          measured === 1 ? 'call' : 'calls'
        }, worst minute's p95 ${worstP95} ms.`;
  return counts + latency;
}

/** Points only where `keep(value)`: a flat line of 60 dots at zero would hide what matters. */
const pointsWhere = (keep) => (u, seriesIdx) => {
  const values = u.data[seriesIdx] ?? [];
  const kept = [];
  for (let i = 0; i < values.length; i++) if (keep(values[i])) kept.push(i);
  return kept;
};
const positive = (v) => v != null && v > 0;
const present = (v) => v != null;

/** Sent and received are bars side by side in each minute (left and right of it), so neither hides the other. */
const barSeries = (label, color, align) => ({
  label,
  stroke: color,
  fill: color,
  // No outline: a minute with none would otherwise show a dash on the axis.
  width: 0,
  scale: 'count',
  paths: uPlot.paths.bars({ size: [0.42, 14, 2], align }),
  points: { show: false },
  value: (_u, v) => (v == null ? '—' : String(v)),
});

const failedSeries = () => ({
  label: 'Failed',
  stroke: COLORS.failed,
  fill: COLORS.failed,
  scale: 'count',
  // Marks, no line: failures are rare, and each one should stand out.
  paths: () => null,
  points: { show: true, size: 9, width: 2, fill: COLORS.failed, filter: pointsWhere(positive) },
  value: (_u, v) => (v == null ? '—' : String(v)),
});

const latencySeries = (label, dash) => ({
  label,
  stroke: COLORS.latency,
  width: 2,
  dash,
  scale: 'ms',
  spanGaps: false,
  points: { show: true, size: 6, filter: pointsWhere(present) },
  value: (_u, v) => (v == null ? '—' : `${v} ms`),
});

/**
 * Draws into `container` and keeps the chart as wide as it is. Returns `update(buckets)` and `destroy()`.
 * @param {HTMLElement} container
 */
export function createActivityChart(container) {
  const axisFont = '12px system-ui, sans-serif';
  const grid = { stroke: '#e6eaee', width: 1 };
  const options = {
    width: Math.max(280, container.clientWidth),
    height: HEIGHT,
    cursor: { points: { size: 7 } },
    legend: { live: true },
    scales: {
      // Half a minute of room at each end, so the first and last minutes' bars are not cut.
      x: { time: true, range: (_u, min, max) => [min - 30, max + 30] },
      count: { range: (_u, _min, max) => [0, Math.max(4, Math.ceil(max * 1.15))] },
      ms: { range: (_u, _min, max) => [0, Math.max(100, Math.ceil((max ?? 0) * 1.15))] },
    },
    axes: [
      { font: axisFont, stroke: '#4a5560', grid, ticks: grid },
      {
        scale: 'count',
        label: 'messages / min',
        labelFont: axisFont,
        font: axisFont,
        stroke: '#4a5560',
        grid,
        ticks: grid,
        values: (_u, splits) => splits.map((v) => (Number.isInteger(v) ? String(v) : '')),
      },
      {
        scale: 'ms',
        side: 1,
        label: 'AI latency (ms)',
        labelFont: axisFont,
        font: axisFont,
        stroke: COLORS.latency,
        grid: { show: false },
        ticks: grid,
      },
    ],
    series: [
      { label: 'Minute', value: (_u, v) => (v == null ? '—' : new Date(v * 1000).toLocaleTimeString()) },
      barSeries('Sent', COLORS.sent, -1),
      barSeries('Received', COLORS.received, 1),
      failedSeries(),
      latencySeries('AI latency avg'),
      latencySeries('AI latency p95', [6, 4]),
    ],
  };
  const chart = new uPlot(options, [[], [], [], [], [], []], container);
  const resize = new ResizeObserver(() => {
    const width = Math.max(280, container.clientWidth);
    if (width !== chart.width) chart.setSize({ width, height: HEIGHT });
  });
  resize.observe(container);
  return {
    update(buckets) {
      chart.setData(toSeries(buckets));
    },
    destroy() {
      resize.disconnect();
      chart.destroy();
    },
  };
}
