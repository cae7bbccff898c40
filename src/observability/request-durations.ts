// http_request_duration_seconds takes one observation per request, so its cost is paid by every request. prom-client's
// Histogram.observe checks the label names, builds a hash string of the labels and walks an object of buckets on each
// call (about half a microsecond). This Histogram keeps each method, route and status code's counts in a plain array,
// found by a short key, and gives prom-client the same series (buckets, sum, count) when it is scraped.
import { Histogram, type HistogramConfiguration, type LabelValues, type ObserveDataWithExemplar } from 'prom-client';

export type RequestLabel = 'method' | 'route' | 'status_code';

interface Series {
  labels: LabelValues<RequestLabel>;
  /** Observations per bucket (not cumulative), in the order of the bounds. */
  counts: number[];
  sum: number;
  count: number;
}

interface ExportedValue {
  labels: LabelValues<RequestLabel | 'le'>;
  /** prom-client's `get()` merges these into `labels`; everything is in `labels` already. */
  sharedLabels: Record<string, never>;
  value: number;
  metricName: string;
  /** Buckets carry one in prom-client's output; this histogram keeps none. */
  exemplar?: null;
}

interface Exported {
  name: string;
  help: string;
  type: 'histogram';
  values: ExportedValue[];
  aggregator: 'sum';
}

export class RequestDurations extends Histogram<RequestLabel> {
  private readonly bounds: number[];
  private readonly series = new Map<string, Series>();

  constructor(private readonly configuration: HistogramConfiguration<RequestLabel> & { buckets: number[] }) {
    super({ ...configuration, labelNames: ['method', 'route', 'status_code'] });
    this.bounds = [...configuration.buckets].sort((a, b) => a - b);
    // prom-client's constructor sets `observe` on the instance, so a method of this class would not replace it.
    this.observe = (
      first: number | LabelValues<RequestLabel> | ObserveDataWithExemplar<RequestLabel>,
      value?: number,
    ) => this.observeAny(first, value);
  }

  /** One request: its duration in seconds, under its method, route and status code. */
  record(method: string, route: string, statusCode: number | string, seconds: number): void {
    const key = `${statusCode} ${method} ${route}`;
    let series = this.series.get(key);
    if (!series) {
      series = {
        labels: { method, route, status_code: String(statusCode) },
        counts: this.bounds.map(() => 0),
        sum: 0,
        count: 0,
      };
      this.series.set(key, series);
    }
    const { bounds } = this;
    const { counts } = series;
    for (let i = 0; i < bounds.length; i++) {
      if (seconds <= (bounds[i] as number)) {
        counts[i] = (counts[i] as number) + 1;
        break;
      }
    }
    series.sum += seconds;
    series.count += 1;
  }

  /** prom-client's `observe()`, for any other caller: the same store as `record`. */
  private observeAny(
    first: number | LabelValues<RequestLabel> | ObserveDataWithExemplar<RequestLabel>,
    value?: number,
  ) {
    const [labels, seconds] =
      typeof first === 'number'
        ? [{}, first]
        : 'value' in first && typeof first.value === 'number'
          ? [first.labels ?? {}, first.value]
          : [first as LabelValues<RequestLabel>, value ?? Number.NaN];
    if (!Number.isFinite(seconds)) throw new TypeError(`Value is not a valid number: ${seconds}`);
    const { method = '', route = '', status_code: status = '' } = labels as LabelValues<RequestLabel>;
    this.record(String(method), String(route), status, seconds);
  }

  override reset(): void {
    // prom-client's constructor calls reset() too, before this class's fields exist.
    this.series?.clear();
  }

  /**
   * What the registry reads to write the text format (and what prom-client's own `get()` builds on): every series'
   * cumulative buckets, sum and count.
   */
  async getForPromString(): Promise<Exported> {
    const values: ExportedValue[] = [];
    const { name } = this.configuration;
    for (const { labels, counts, sum, count } of this.series.values()) {
      let cumulative = 0;
      for (const [i, bound] of this.bounds.entries()) {
        cumulative += counts[i] ?? 0;
        values.push({
          labels: { le: bound, ...labels },
          sharedLabels: {},
          value: cumulative,
          metricName: `${name}_bucket`,
          exemplar: null,
        });
      }
      values.push({
        labels: { le: '+Inf', ...labels },
        sharedLabels: {},
        value: count,
        metricName: `${name}_bucket`,
        exemplar: null,
      });
      values.push({ labels, sharedLabels: {}, value: sum, metricName: `${name}_sum` });
      values.push({ labels, sharedLabels: {}, value: count, metricName: `${name}_count` });
    }
    return { name, help: this.configuration.help, type: 'histogram', values, aggregator: 'sum' };
  }
}
