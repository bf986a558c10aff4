/**
 * prom-client metrics whose labelled children are plain numbers: an increment or an observation
 * on the hot path is a field update (a histogram: a short scan of its bounds), with no label
 * object, hash or validation per event as prom-client's own children do; the text is built from
 * the children when a scrape asks (`get`, which the registry calls). Children are made once per
 * label set and kept by the caller.
 *
 * @module
 */
import {
  Counter,
  Histogram,
  type CounterConfiguration,
  type HistogramConfiguration,
  type MetricObjectWithValues,
  type MetricType,
  type MetricValue,
  type MetricValueWithName,
} from 'prom-client';

/**
 * The metric types as prom-client writes them at run time (its type declarations say a numeric
 * enum it does not export; the registry compares and prints these strings).
 */
const COUNTER = 'counter' as unknown as MetricType;
const HISTOGRAM = 'histogram' as unknown as MetricType;

/** Label values of one child. */
export type Labels = Readonly<Record<string, string>>;

/** One labelled value of a {@link FastCounter}. */
export class CounterChild {
  value = 0;
  readonly labels: Labels;
  constructor(labels: Labels) {
    this.labels = labels;
  }
  inc(by = 1): void {
    this.value += by;
  }
}

/** A counter of {@link CounterChild} children (`child(labels)`, once per label set). */
export class FastCounter extends Counter {
  readonly #children: CounterChild[] = [];
  readonly #name: string;
  readonly #help: string;

  constructor(config: CounterConfiguration<string>) {
    super(config);
    this.#name = config.name;
    this.#help = config.help;
  }

  /** A new child for these label values (shown from its first scrape on, even at 0). */
  child(labels: Labels = {}): CounterChild {
    const c = new CounterChild(labels);
    this.#children.push(c);
    return c;
  }

  override get(): Promise<MetricObjectWithValues<MetricValue<string>>> {
    return Promise.resolve({
      name: this.#name,
      help: this.#help,
      type: COUNTER,
      aggregator: 'sum',
      collect: () => undefined,
      values: this.#children.map((c) => ({ labels: c.labels, value: c.value })),
    });
  }
}

/** One labelled histogram of a {@link FastHistogram}. */
export class HistogramChild {
  /** Observations per bucket (not cumulative), by the index of its upper bound. */
  readonly counts: number[];
  sum = 0;
  count = 0;
  readonly labels: Labels;
  readonly #bounds: readonly number[];
  constructor(labels: Labels, bounds: readonly number[]) {
    this.labels = labels;
    this.#bounds = bounds;
    this.counts = bounds.map(() => 0);
  }
  observe(value: number): void {
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    if (i < bounds.length) this.counts[i] = this.counts[i]! + 1;
    this.sum += value;
    this.count++;
  }
}

/** A histogram of {@link HistogramChild} children (`child(labels)`, once per label set). */
export class FastHistogram extends Histogram {
  readonly #children: HistogramChild[] = [];
  readonly #name: string;
  readonly #help: string;
  readonly #bounds: readonly number[];

  constructor(config: HistogramConfiguration<string> & { readonly buckets: readonly number[] }) {
    super({ ...config, buckets: [...config.buckets] });
    this.#name = config.name;
    this.#help = config.help;
    this.#bounds = [...config.buckets].sort((a, b) => a - b);
  }

  /** A new child for these label values (shown from its first scrape on, even empty). */
  child(labels: Labels = {}): HistogramChild {
    const c = new HistogramChild(labels, this.#bounds);
    this.#children.push(c);
    return c;
  }

  override get(): Promise<MetricObjectWithValues<MetricValueWithName<string>>> {
    const bucket = `${this.#name}_bucket`;
    const values: MetricValueWithName<string>[] = [];
    for (const c of this.#children) {
      let cumulative = 0;
      this.#bounds.forEach((le, i) => {
        cumulative += c.counts[i]!;
        values.push({ labels: { ...c.labels, le }, value: cumulative, metricName: bucket });
      });
      values.push({ labels: { ...c.labels, le: '+Inf' }, value: c.count, metricName: bucket });
      values.push({ labels: c.labels, value: c.sum, metricName: `${this.#name}_sum` });
      values.push({ labels: c.labels, value: c.count, metricName: `${this.#name}_count` });
    }
    return Promise.resolve({
      name: this.#name,
      help: this.#help,
      type: HISTOGRAM,
      aggregator: 'sum',
      collect: () => undefined,
      values,
    });
  }

  /** The registry prefers this to `get` when a histogram has it (prom-client's own does). */
  getForPromString(): Promise<MetricObjectWithValues<MetricValueWithName<string>>> {
    return this.get();
  }
}
