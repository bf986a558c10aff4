import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IllegalTransitionError } from '../../src/core/errors.js';
import {
  COMMAND_STATUSES,
  COMPENSATION_STATUSES,
  MACHINES,
  TASK_STATUSES,
  UNDO_STATUSES,
  assertTransition,
  canTransition,
  isTerminal,
  type MachineName,
} from '../../src/core/states.js';

const STATES: Record<MachineName, readonly string[]> = {
  command: COMMAND_STATUSES,
  compensation: COMPENSATION_STATUSES,
  task: TASK_STATUSES,
  undo: UNDO_STATUSES,
};

describe('transition tables', () => {
  for (const machine of Object.keys(MACHINES) as MachineName[]) {
    const states = STATES[machine];
    it(`${machine}: closed under composition (the store may see only some steps)`, () => {
      fc.assert(
        fc.property(
          fc.constantFrom(...states),
          fc.constantFrom(...states),
          fc.constantFrom(...states),
          (a, b, c) => {
            if (canTransition(machine, a, b) && canTransition(machine, b, c))
              expect(canTransition(machine, a, c)).toBe(true);
          },
        ),
      );
    });
    it(`${machine}: acyclic apart from staying put, so every walk ends`, () => {
      fc.assert(
        fc.property(fc.constantFrom(...states), fc.constantFrom(...states), (a, b) => {
          if (a !== b && canTransition(machine, a, b))
            expect(canTransition(machine, b, a)).toBe(false);
        }),
      );
    });
    it(`${machine}: assertTransition throws a typed error exactly when canTransition is false`, () => {
      fc.assert(
        fc.property(fc.constantFrom(...states), fc.constantFrom(...states), (a, b) => {
          if (canTransition(machine, a, b))
            expect(() => assertTransition(machine, a, b, 'x')).not.toThrow();
          else {
            try {
              assertTransition(machine, a, b, 'x');
              expect.unreachable();
            } catch (error) {
              expect(error).toBeInstanceOf(IllegalTransitionError);
              expect((error as IllegalTransitionError).code).toBe('ILLEGAL_TRANSITION');
            }
          }
        }),
      );
    });
  }

  it('ended commands never move', () => {
    for (const from of COMMAND_STATUSES.filter(isTerminal)) {
      for (const to of COMMAND_STATUSES)
        if (to !== from) expect(canTransition('command', from, to)).toBe(false);
    }
  });

  it('unknown states are refused', () => {
    expect(canTransition('command', 'pending', 'exploded')).toBe(false);
    expect(canTransition('task', 'nope', 'running')).toBe(false);
  });
});
