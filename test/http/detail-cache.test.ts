/** The kept details of ended commands: bounded, least recently used first out, expiring, dropped with their trees. */
import { describe, expect, it } from 'vitest';
import { DETAIL_CACHE_TTL_MS, DetailCache } from '../../src/http/detail-cache.js';

describe('DetailCache', () => {
  it('keeps at most its entries, dropping the least recently read first', () => {
    const cache = new DetailCache(2);
    cache.put(1, 1, '{"id":1}', 0);
    cache.put(2, 2, '{"id":2}', 0);
    expect(cache.get(1, 1)?.body).toBe('{"id":1}'); // 1 is now the most recent
    cache.put(3, 3, '{"id":3}', 2);
    expect(cache.size).toBe(2);
    expect(cache.get(2, 3)).toBeUndefined();
    expect(cache.get(1, 3)?.body).toBe('{"id":1}');
    expect(cache.get(3, 3)?.body).toBe('{"id":3}');
  });

  it('expires entries after the TTL, and keeps none when sized 0', () => {
    const cache = new DetailCache();
    const etag = cache.put(7, 1, '{"id":7}', 100);
    expect(cache.get(7, 100 + DETAIL_CACHE_TTL_MS - 1)?.etag).toBe(etag);
    expect(cache.get(7, 100 + DETAIL_CACHE_TTL_MS)).toBeUndefined();
    expect(cache.size).toBe(0);
    const none = new DetailCache(0);
    expect(none.put(7, 1, '{"id":7}', 0)).toBe(etag);
    expect(none.get(7, 0)).toBeUndefined();
  });

  it('drops the entries of pruned trees only; entity tags follow the content', () => {
    const cache = new DetailCache();
    cache.put(10, 10, '{"id":10}', 0);
    cache.put(11, 10, '{"id":11}', 0);
    cache.put(20, 20, '{"id":20}', 0);
    cache.dropTrees([10]);
    expect([10, 11, 20].map((id) => cache.get(id, 1) !== undefined)).toEqual([false, false, true]);
    expect(cache.put(1, 1, '{"a":1}', 0)).not.toBe(cache.put(1, 1, '{"a":2}', 0));
  });
});
