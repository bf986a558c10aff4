/**
 * A small strict parser of the Prometheus text format (version 0.0.4), for tests that scrape
 * `/metrics`: every sample must belong to a family declared by `# TYPE` before it (histograms:
 * `_bucket`, `_sum`, `_count`), label sets must be well-formed, values numbers, and no sample
 * may repeat. Anything else throws, naming the line.
 */

/** One metric family: its type, help and samples. */
export interface Family {
  readonly name: string;
  readonly type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  help: string;
  readonly samples: Sample[];
}

/** One sample line. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(text: string, line: number): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (text === 'NaN') return NaN;
  if (!/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(text))
    throw new Error(`line ${line}: bad value "${text}"`);
  return Number(text);
}

function parseLabels(text: string, line: number): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf('=', i);
    if (eq < 0) throw new Error(`line ${line}: label without "="`);
    const name = text.slice(i, eq);
    if (!LABEL.test(name)) throw new Error(`line ${line}: bad label name "${name}"`);
    if (text[eq + 1] !== '"') throw new Error(`line ${line}: label ${name} not quoted`);
    let value = '';
    let j = eq + 2;
    for (; j < text.length && text[j] !== '"'; j++) {
      if (text[j] === '\\') {
        const next = text[++j];
        value += next === 'n' ? '\n' : (next ?? '');
      } else value += text[j];
    }
    if (j >= text.length) throw new Error(`line ${line}: unterminated label ${name}`);
    if (name in labels) throw new Error(`line ${line}: label ${name} twice`);
    labels[name] = value;
    i = j + 1;
    if (i < text.length) {
      if (text[i] !== ',') throw new Error(`line ${line}: expected "," after label ${name}`);
      i++;
    }
  }
  return labels;
}

/** The family a sample name belongs to, given the declared families. */
function familyOf(name: string, families: Map<string, Family>): Family | undefined {
  const direct = families.get(name);
  if (direct) return direct;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!name.endsWith(suffix)) continue;
    const f = families.get(name.slice(0, -suffix.length));
    if (f && (f.type === 'histogram' || (f.type === 'summary' && suffix !== '_bucket'))) return f;
  }
  return undefined;
}

/** Parses a scrape; throws on anything that is not well-formed. */
export function parsePrometheusText(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const seen = new Set<string>();
  text.split('\n').forEach((raw, index) => {
    const line = index + 1;
    if (raw.trim() === '') return;
    if (raw.startsWith('# HELP ')) {
      const [name = '', ...help] = raw.slice(7).split(' ');
      if (!NAME.test(name)) throw new Error(`line ${line}: bad HELP name`);
      const f = families.get(name);
      if (f) f.help = help.join(' ');
      else families.set(name, { name, type: 'untyped', help: help.join(' '), samples: [] });
      return;
    }
    if (raw.startsWith('# TYPE ')) {
      const [name = '', type = '', ...rest] = raw.slice(7).split(' ');
      if (!NAME.test(name) || !TYPES.has(type) || rest.length > 0)
        throw new Error(`line ${line}: bad TYPE line`);
      const f = families.get(name);
      if (f && f.samples.length > 0) throw new Error(`line ${line}: TYPE after samples`);
      families.set(name, {
        name,
        type: type as Family['type'],
        help: f?.help ?? '',
        samples: [],
      });
      return;
    }
    if (raw.startsWith('#')) return;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(raw);
    if (!m) throw new Error(`line ${line}: not a sample: ${raw}`);
    const name = m[1]!;
    const labels = parseLabels(m[3] ?? '', line);
    const family = familyOf(name, families);
    if (!family || family.type === 'untyped')
      throw new Error(`line ${line}: sample ${name} of no declared family`);
    if (family.type === 'histogram' && name.endsWith('_bucket') && !('le' in labels))
      throw new Error(`line ${line}: bucket without "le"`);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seen.has(key)) throw new Error(`line ${line}: sample repeated`);
    seen.add(key);
    family.samples.push({ name, labels, value: parseValue(m[4]!, line) });
  });
  return families;
}

/** The value of the one sample named `name` whose labels include `labels` (0 when none). */
export function sampleValue(
  families: Map<string, Family>,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): number {
  let total = 0;
  for (const f of families.values())
    for (const s of f.samples)
      if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
        total += s.value;
  return total;
}

/** Every sample named `name`. */
export function samples(families: Map<string, Family>, name: string): Sample[] {
  return [...families.values()].flatMap((f) => f.samples.filter((s) => s.name === name));
}
