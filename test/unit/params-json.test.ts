/** assertJson: what survives JSON storage passes; anything else is named by its path. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/core/errors.js';
import { assertJson, isJson, jsonIssues } from '../../src/core/params.js';

const issuesOf = (value: unknown): { path: string; message: string }[] => {
  try {
    assertJson(value, 'params');
    return [];
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    return [...(error as ValidationError).issues];
  }
};

describe('assertJson', () => {
  it('passes plain JSON values; undefined properties and array holes are left out as JSON leaves them', () => {
    // eslint-disable-next-line no-sparse-arrays
    const holes = [1, , 3];
    for (const ok of [
      null,
      'a',
      0,
      -1.5,
      true,
      [],
      {},
      { a: [1, { b: 'c' }], d: undefined },
      holes,
    ])
      expect(issuesOf(ok)).toEqual([]);
  });

  it('names every bad value by its path', () => {
    const issues = issuesOf({
      a: { b: [1, Number.NaN, { c: new Date(0) }] },
      f: () => 1,
      m: new Map(),
      u: [undefined],
      i: Infinity,
    });
    expect(issues).toEqual([
      { path: 'a.b.1', message: 'NaN is not a JSON number' },
      { path: 'a.b.2.c', message: 'a Date is not JSON' },
      { path: 'f', message: 'a function is not JSON' },
      { path: 'm', message: 'a Map is not JSON' },
      { path: 'u.0', message: 'a undefined is not JSON' },
      { path: 'i', message: 'Infinity is not a JSON number' },
    ]);
    expect(issuesOf(10n)).toEqual([{ path: '', message: 'a bigint is not JSON' }]);
  });

  it('refuses nesting deeper than 64 levels, at the level where it goes too deep', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 70; i++) deep = { x: deep };
    const issues = issuesOf(deep);
    expect(issues).toHaveLength(1);
    expect(issues[0]!.message).toBe('nested too deeply (more than 64 levels)');
    expect(issues[0]!.path.split('.')).toHaveLength(65);
  });
});

describe('isJson and jsonIssues', () => {
  /** Values JSON keeps and values it does not, nested in each other. */
  const leaf = fc.oneof(
    fc.jsonValue(),
    fc.double(),
    fc.constantFrom(NaN, Infinity, -Infinity, -0), // rare among fc.double()'s values
    fc.constantFrom(undefined, () => 1, Symbol('s'), 10n, new Date(0), new Map(), /x/),
    fc.constant(Object.create(null) as object),
    fc.constant(new (class Point {})()),
  );
  const value = fc.letrec((tie) => ({
    node: fc.oneof({ depthSize: 'small' }, leaf, tie('array'), tie('object')),
    array: fc.array(tie('node'), { maxLength: 4 }),
    object: fc.dictionary(fc.string({ maxLength: 3 }), tie('node'), { maxKeys: 4 }),
  })).node;

  it('agree on every value: the fast walk says yes exactly when the walk naming issues finds none', () => {
    fc.assert(
      fc.property(value, (v) => {
        expect(isJson(v)).toBe(jsonIssues(v).length === 0);
      }),
      { numRuns: 2000 },
    );
  });

  it('agree on holes, undefined properties and the depth limit', () => {
    // eslint-disable-next-line no-sparse-arrays
    const holes = [1, , NaN];
    let deep: unknown = 1;
    for (let i = 0; i < 70; i++) deep = [deep];
    let edge: unknown = 1;
    for (let i = 0; i < 64; i++) edge = { a: edge };
    for (const v of [
      holes,
      { a: undefined },
      { a: undefined, b: Infinity },
      deep,
      edge,
      [undefined],
    ]) {
      expect(isJson(v)).toBe(jsonIssues(v).length === 0);
    }
    expect(isJson(edge)).toBe(true);
    expect(isJson(deep)).toBe(false);
  });
});
