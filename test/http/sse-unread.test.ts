/**
 * An event stream whose client does not read (a frozen tab or process: the connection open, its
 * window shut) is dropped once it holds more than its bound unsent, instead of keeping every
 * event in the node's memory for as long as the client stays connected; a client that reads gets
 * everything.
 */
import net from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, expect, it } from 'vitest';
import { Streams, type Stream } from '../../src/http/sse.js';
import { createNodeMetrics } from '../../src/observability/metrics.js';

const BOUND = 256 * 1024;
const EVENT = 'x'.repeat(16 * 1024);
let app: FastifyInstance | undefined;
afterEach(() => app?.close());

/** A server with one stream route; resolves with its port and the streams it opened. */
async function serve(
  dropped: number[],
): Promise<{ port: number; opened: Promise<Stream>; streams: Streams }> {
  const streams = new Streams({ maxUnsentBytes: BOUND, onDropped: (n) => dropped.push(n) });
  let opened!: (s: Stream) => void;
  const stream = new Promise<Stream>((r) => (opened = r));
  app = Fastify();
  app.get('/events', (_request, reply) => {
    opened(streams.open(reply));
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { port: (app.server.address() as net.AddressInfo).port, opened: stream, streams };
}

/** A raw client that sends the request; `read` says whether it reads what comes. */
function client(port: number, read: boolean): { socket: net.Socket; got(): number } {
  const socket = net.connect(port, '127.0.0.1');
  let got = 0;
  socket.write('GET /events HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n');
  if (read) socket.on('data', (chunk: Buffer) => (got += chunk.length));
  else socket.pause();
  socket.on('error', () => undefined);
  return { socket, got: () => got };
}

it('drops a stream whose client does not read once it holds more than its bound', async () => {
  const dropped: number[] = [];
  const { port, opened, streams } = await serve(dropped);
  const metrics = createNodeMetrics();
  metrics.followStreams(streams);
  const { socket } = client(port, false);
  const stream = await opened;
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  // Far more than the socket buffers of both ends can take: the rest waits in the node.
  let sent = 0;
  while (stream.send('job', EVENT)) {
    sent += EVENT.length;
    if (sent > 256 * 1024 * 1024) break;
  }
  expect(stream.closed).toBe(true);
  expect(dropped).toHaveLength(1);
  expect(dropped[0]).toBeGreaterThan(BOUND);
  expect(dropped[0]).toBeLessThan(BOUND + 2 * EVENT.length);
  const text = await metrics.registry.metrics();
  expect(text).toMatch(/^coco_api_streams_dropped_total 1$/m);
  expect(text).toMatch(/^coco_api_streams 0$/m);
  // The connection is cut, not ended after what was buffered.
  socket.on('data', () => undefined);
  socket.resume();
  await closed;
});

it('a client that reads gets every event, and the stream stays open', async () => {
  const dropped: number[] = [];
  const { port, opened } = await serve(dropped);
  const reader = client(port, true);
  const stream = await opened;
  const total = 8 * 1024 * 1024; // 32 times the bound, sent as the client reads
  for (let sent = 0; sent < total; sent += EVENT.length) {
    expect(stream.send('job', EVENT)).toBe(true);
    // Waits for the socket to drain below the bound, as a reader lets it.
    while (reader.got() < sent - BOUND / 2) await new Promise((r) => setImmediate(r));
  }
  expect(stream.closed).toBe(false);
  expect(dropped).toEqual([]);
  stream.close();
  reader.socket.destroy();
});
