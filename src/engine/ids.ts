/**
 * Command ids, handed out without a store round trip: the engine reserves blocks of ids and
 * refills in the background before a block runs out.
 *
 * @module
 */
import { CocoError, ErrorCode } from '../core/errors.js';
import type { Store } from '../store/port.js';

/** Hands out command ids from reserved blocks. */
export class IdAllocator {
  #next = 0;
  #end = 0;
  #spare: { first: number; end: number } | null = null;
  #refilling = false;

  private readonly store: Store;
  private readonly blockSize: number;
  constructor(store: Store, blockSize: number) {
    this.store = store;
    this.blockSize = blockSize;
  }

  /** Reserves the first block. */
  async init(): Promise<void> {
    const first = await this.store.reserveIds(this.blockSize);
    this.#next = first;
    this.#end = first + this.blockSize;
  }

  /** The next id. Throws a retryable `ID_EXHAUSTED` error if a refill is late. */
  next(): number {
    if (this.#next >= this.#end) {
      if (!this.#spare) {
        this.#refill();
        throw new CocoError(ErrorCode.IdExhausted, 'command ids are being reserved; try again', {
          retryable: true,
        });
      }
      this.#next = this.#spare.first;
      this.#end = this.#spare.end;
      this.#spare = null;
    }
    const id = this.#next++;
    if (!this.#spare && this.#end - this.#next < this.blockSize / 2) this.#refill();
    return id;
  }

  #refill(): void {
    if (this.#refilling) return;
    this.#refilling = true;
    this.store.reserveIds(this.blockSize).then(
      (first) => {
        this.#spare = { first, end: first + this.blockSize };
        this.#refilling = false;
      },
      () => {
        this.#refilling = false;
      },
    );
  }
}
