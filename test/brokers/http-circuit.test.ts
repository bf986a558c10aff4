import { describe, expect, it } from 'vitest';
import { CircuitBreaker } from '../../src/brokers/http/circuit.js';
import { ManualClock } from '../../src/core/clock.js';
import { ErrorCode } from '../../src/core/errors.js';
import { PATHS } from '../../src/protocol/agent-v2.js';
import { rejection, setup, until } from './http-setup.js';

describe('CircuitBreaker', () => {
  const settings = { failureThreshold: 3, coolDownMs: 1_000, maxCoolDownMs: 3_000 };

  it('opens after N consecutive failures, half-opens for one probe after the cool-down, closes on success', () => {
    const clock = new ManualClock();
    const circuit = new CircuitBreaker(settings, clock, () => 0);
    circuit.failure(false);
    circuit.success(false); // a success resets the count
    expect(circuit.failure(false)).toBe(false);
    expect(circuit.failure(false)).toBe(false);
    expect(circuit.failure(false)).toBe(true);
    expect(circuit.state).toBe('open');
    expect(circuit.acquire()).toEqual({
      allowed: false,
      until: clock.now() + 1_000,
      state: 'open',
    });
    clock.advance(999);
    expect(circuit.acquire().allowed).toBe(false);
    clock.advance(1);
    expect(circuit.state).toBe('half-open');
    expect(circuit.acquire()).toEqual({ allowed: true, probe: true });
    // One probe at a time.
    expect(circuit.acquire()).toMatchObject({ allowed: false, state: 'half-open' });
    expect(circuit.success(true)).toBe(true);
    expect(circuit.state).toBe('closed');
    expect(circuit.acquire()).toEqual({ allowed: true, probe: false });
  });

  it('doubles the cool-down per failed probe, up to the maximum, with jitter on top', () => {
    const clock = new ManualClock();
    let r = 0;
    const circuit = new CircuitBreaker(settings, clock, () => r);
    for (let i = 0; i < 3; i++) circuit.failure(false);
    const opened = clock.now();
    expect(circuit.openUntil - opened).toBe(1_000);
    const cooldowns: number[] = [];
    for (let i = 0; i < 3; i++) {
      clock.advance(circuit.openUntil - clock.now());
      const permit = circuit.acquire();
      expect(permit).toEqual({ allowed: true, probe: true });
      const at = clock.now();
      circuit.failure(true);
      cooldowns.push(circuit.openUntil - at);
    }
    expect(cooldowns).toEqual([2_000, 3_000, 3_000]);
    // Jitter adds up to half the cool-down.
    r = 0.999;
    clock.advance(circuit.openUntil - clock.now());
    circuit.acquire();
    const at = clock.now();
    circuit.failure(true);
    expect(circuit.openUntil - at).toBeCloseTo(4_498.5, 3);
    // An aborted probe lets the next call probe.
    clock.advance(circuit.openUntil - clock.now());
    expect(circuit.acquire()).toEqual({ allowed: true, probe: true });
    circuit.release(true);
    expect(circuit.acquire()).toEqual({ allowed: true, probe: true });
  });
});

describe('HttpBroker circuit breaker over real HTTP', () => {
  it('fails fast while open, probes once after the cool-down, and closes when the agent recovers', async () => {
    const { server, broker, logger } = await setup(['a1'], {
      retries: 0,
      circuit: { failureThreshold: 3, coolDownMs: 300, maxCoolDownMs: 1_000 },
    });
    await broker.checkHealth('a1');
    const a1 = server.agent('a1');
    a1.fault({ kind: 'status', status: 500, paths: [PATHS.status] });
    for (let i = 0; i < 3; i++)
      expect((await rejection(broker.getStatuses('a1', ['x']))).message).toMatch(/500/);
    expect(a1.requests(PATHS.status)).toBe(3);
    expect(broker.agent('a1').circuit).toBe('open');
    expect(logger.lines.some((l) => l.level === 'warn' && /circuit opened/.test(l.msg ?? ''))).toBe(
      true,
    );

    // Open: calls fail fast, without a request, saying until when.
    const began = Date.now();
    for (let i = 0; i < 20; i++) {
      const error = await rejection(broker.getStatuses('a1', ['x']));
      expect(error.code).toBe(ErrorCode.AgentUnavailable);
      expect(error.retryable).toBe(true);
      expect(error.message).toMatch(
        /circuit open until \d{4}-\d\d-\d\dT[\d:.]+Z .*failed fast without a request/,
      );
    }
    expect(Date.now() - began).toBeLessThan(200);
    expect(a1.requests(PATHS.status)).toBe(3);
    expect(broker.agent('a1').requests.failedFast).toBe(20);

    // Still failing: the probe fails and the circuit opens again for a doubled cool-down.
    await until(() => broker.agent('a1').circuit === 'half-open', 2_000, 'half-open');
    await rejection(broker.getStatuses('a1', ['x']));
    expect(a1.requests(PATHS.status)).toBe(4);
    const snapshot = broker.agent('a1');
    expect(snapshot.circuit).toBe('open');
    expect(snapshot.circuitOpenUntil - Date.now()).toBeGreaterThan(400);

    // Recovered: one probe (held by the agent for 100 ms) while other calls still fail fast.
    a1.heal().fault({ kind: 'delay', ms: 100, times: 1, paths: [PATHS.status] });
    await until(() => broker.agent('a1').circuit === 'half-open', 3_000, 'half-open again');
    const probe = broker.getStatuses('a1', ['x']);
    const other = await rejection(broker.getStatuses('a1', ['y']));
    expect(other.message).toMatch(/half-open, a probe call is in flight/);
    expect(await probe).toEqual([{ taskId: 'x', state: 'unknown' }]);
    expect(a1.requests(PATHS.status)).toBe(5);
    expect(broker.agent('a1').circuit).toBe('closed');
    expect(await broker.getStatuses('a1', ['y'])).toEqual([{ taskId: 'y', state: 'unknown' }]);
  });

  it('counts each failed attempt, so retries stop once the circuit opens', async () => {
    const { server, broker } = await setup(['a1'], {
      retries: { max: 5, baseMs: 5, maxMs: 10 },
      circuit: { failureThreshold: 2, coolDownMs: 5_000 },
    });
    await broker.checkHealth('a1');
    const a1 = server.agent('a1');
    a1.fault({ kind: 'drop', paths: [PATHS.list] });
    const error = await rejection(broker.listTasks('a1', ''));
    expect(error.code).toBe(ErrorCode.AgentUnavailable);
    expect(a1.requests(PATHS.list)).toBe(2);
    expect(broker.agent('a1').circuit).toBe('open');
  });

  it('reports the agent down on failures and up again (with a health check) when it answers', async () => {
    const { server, broker } = await setup(['a1'], {
      retries: 0,
      circuit: { failureThreshold: 10 },
    });
    const infos: { up: boolean; error?: { code: string } | null }[] = [];
    broker.onAgentInfo((info) => infos.push(info));
    await until(() => infos.length === 1, 2_000, 'first info');
    expect(infos[0]).toMatchObject({ up: true, error: null });
    const a1 = server.agent('a1');
    a1.fault({ kind: 'status', status: 502, paths: [PATHS.status], times: 2 });
    await rejection(broker.getStatuses('a1', ['x']));
    await rejection(broker.getStatuses('a1', ['x']));
    expect(infos).toHaveLength(2); // down once, not once per failure
    expect(infos[1]).toMatchObject({ up: false, error: { code: ErrorCode.AgentUnavailable } });
    const healthBefore = a1.requests(PATHS.health);
    await broker.getStatuses('a1', ['x']);
    expect(infos[2]).toMatchObject({ up: true, error: null });
    await until(
      () => a1.requests(PATHS.health) === healthBefore + 1,
      2_000,
      'the recovery health check',
    );
  });
});
