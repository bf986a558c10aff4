/**
 * A small parser of the `text/event-stream` format (pure): `event:` and `data:` fields, several
 * `data:` lines joined by newlines, a blank line ends an event, lines starting with `:` are
 * comments (keep-alives); lines may end with LF, CRLF or CR, and chunks may cut anywhere.
 *
 * @module
 */

/** One event of the stream. */
export interface StreamEvent {
  readonly event: string;
  readonly data: string;
}

/** Splits a `text/event-stream` body into events, chunk by chunk. */
export class EventParser {
  #buffer = '';
  #event = '';
  #data: string[] = [];

  /** Feeds a chunk of text; returns the events it completed. */
  push(chunk: string): StreamEvent[] {
    this.#buffer += chunk;
    const out: StreamEvent[] = [];
    for (;;) {
      const nl = this.#buffer.search(/\r\n|\r|\n/);
      // A CR that ends the chunk may be the first half of a CRLF cut by the chunking: wait.
      if (nl < 0 || (nl === this.#buffer.length - 1 && this.#buffer[nl] === '\r')) break;
      const line = this.#buffer.slice(0, nl);
      this.#buffer = this.#buffer.slice(nl + (this.#buffer.startsWith('\r\n', nl) ? 2 : 1));
      if (line === '') {
        if (this.#data.length > 0)
          out.push({ event: this.#event || 'message', data: this.#data.join('\n') });
        this.#event = '';
        this.#data = [];
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') this.#event = value;
      else if (field === 'data') this.#data.push(value);
    }
    return out;
  }
}
