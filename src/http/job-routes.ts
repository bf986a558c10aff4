/**
 * The job routes: list, tree, a job's live stream, and the stream of every job change.
 *
 * @module
 */
import { ErrorCode, type CocoError } from '../core/errors.js';
import type { Job } from '../jobs/port.js';
import type { JobMonitor } from '../jobs/monitor.js';
import type { JobTree } from '../jobs/view.js';
import { badCursor } from './command-routes.js';
import {
  decodeCursor,
  encodeCursor,
  idParam,
  jobListQuery,
  jobPage,
  jobTree as jobTreeSchema,
} from './contracts.js';
import type { ApiContext } from './context.js';
import { ANSWERED, notFound } from './routes.js';

/**
 * How often a followed job (server-sent events) is re-read from the job tables, besides the
 * local monitor's events: the job may be run by another node of a shared store. Once a second
 * is what a person watching a progress bar notices, and one cheap read per watcher.
 */
const JOB_REFRESH_MS = 1_000;

/**
 * For how long after its root command was created a job that does not exist yet is waited for: the
 * job row is written by the monitor of the node running the command just after the command's
 * first commit — milliseconds on a quiet node, a few batches on a busy one. Past this, the
 * answer is `NOT_FOUND`.
 */
const JOB_APPEAR_MS = 5_000;
/**
 * How often a job that does not exist yet is looked for, within {@link JOB_APPEAR_MS}: a job
 * usually appears within a batch or two (milliseconds), so a short step answers soon after, and
 * one keyed read per step costs nothing.
 */
const JOB_APPEAR_POLL_MS = 50;

/**
 * Most store pages one `GET /v1/jobs` reads when time filters skip jobs: the answer stays
 * bounded (a short page with a cursor goes on from where it stopped).
 */
const MAX_JOB_SCANS = 10;

function noJobView(): CocoError {
  return notFound('this node keeps no job view (jobs: false)');
}

/** Adds the job routes. */
export function jobRoutes(api: ApiContext): void {
  const { routes } = api;
  const monitor = (): JobMonitor => {
    const m = api.monitor();
    if (!m) throw noJobView();
    return m;
  };

  /**
   * The job's tree; for a root command whose job is not written yet (just submitted, maybe on
   * another node), waits for it until JOB_APPEAR_MS after the command was created. Null if
   * there is no such job.
   */
  const jobTree = async (m: JobMonitor, id: number): Promise<JobTree | null> => {
    const tree = await m.getTree(id);
    if (tree) return tree;
    const root = await api.engine().get(id);
    if (!root || root.parentId !== null) return null;
    // Counted from the command's creation: an old root without a job will not get one now.
    for (const until = root.createdAt + JOB_APPEAR_MS; Date.now() < until;) {
      await new Promise((r) => setTimeout(r, JOB_APPEAR_POLL_MS));
      const later = await m.getTree(id);
      if (later) return later;
    }
    return null;
  };

  routes.add(
    {
      method: 'GET',
      url: '/v1/jobs',
      role: 'viewer',
      tag: 'jobs',
      summary: 'List jobs (one per root command), newest first',
      description:
        'Keyset pages: pass nextCursor back as cursor. With time filters a page may hold fewer jobs than the limit ' +
        'while nextCursor is not null (the scan is bounded); null means the last page.',
      query: jobListQuery,
      ok: { status: 200, schema: jobPage },
      errors: { 404: [ErrorCode.NotFound] },
    },
    async ({ query: q }) => {
      const m = monitor();
      let beforeId = q.cursor === undefined ? undefined : decodeCursor(q.cursor);
      if (beforeId === null) throw badCursor();
      const keep = (j: Job): boolean =>
        (q.createdAfter === undefined || j.startedAt >= q.createdAfter) &&
        (q.createdBefore === undefined || j.startedAt < q.createdBefore);
      const jobs: Job[] = [];
      let nextCursor: string | null = null;
      for (let scan = 0; scan < MAX_JOB_SCANS; scan++) {
        const want = q.limit - jobs.length;
        const page = await m.listJobs({
          ...(q.status ? { status: q.status } : {}),
          ...(q.type ? { type: q.type } : {}),
          ...(beforeId === undefined ? {} : { beforeId }),
          limit: want,
        });
        for (const j of page) if (keep(j)) jobs.push(j);
        const last = page.at(-1);
        if (page.length < want || last === undefined) {
          nextCursor = null;
          break;
        }
        beforeId = last.id;
        nextCursor = encodeCursor(last.id);
        if (jobs.length >= q.limit) break;
      }
      return { jobs, nextCursor };
    },
  );

  routes.add(
    {
      method: 'GET',
      url: '/v1/jobs/:id',
      role: 'viewer',
      tag: 'jobs',
      summary: 'A job and its steps as a tree, with progress',
      description:
        'A job just submitted (maybe on another node) is waited for a few seconds before 404.',
      params: idParam,
      ok: { status: 200, schema: jobTreeSchema },
      errors: { 404: [ErrorCode.NotFound] },
    },
    async ({ params: { id } }) => {
      const tree = await jobTree(monitor(), id);
      if (!tree) throw notFound(`job ${id} does not exist`);
      return tree;
    },
  );

  routes.add(
    {
      method: 'GET',
      url: '/v1/jobs/:id/events',
      role: 'viewer',
      tag: 'jobs',
      summary: 'Follow a job: server-sent events of its tree until it ends',
      description:
        '`event: job` with the tree (as GET /v1/jobs/:id) now and after each change; the stream ends after the ' +
        'ended tree. Comment lines (`: heartbeat`) every 15 s keep it open.',
      params: idParam,
      ok: { status: 200, schema: 'sse' },
      errors: { 404: [ErrorCode.NotFound] },
    },
    async ({ params: { id }, reply }) => {
      const m = monitor();
      const first = await jobTree(m, id);
      if (!first) throw notFound(`job ${id} does not exist`);
      const stream = api.streams.open(reply);
      let sending = false;
      let again = false;
      let last = '';
      const send = async (): Promise<void> => {
        if (sending) {
          again = true;
          return;
        }
        sending = true;
        try {
          do {
            again = false;
            const tree = await m.getTree(id);
            if (stream.closed || !tree) break;
            const data = JSON.stringify(tree);
            if (data !== last) stream.send('job', data);
            last = data;
            if (tree.job.endedAt !== null) {
              stream.close();
              break;
            }
          } while (again);
        } finally {
          sending = false;
        }
      };
      const offs = [
        m.on('job', (job) => job.id === id && void send().catch(() => stream.close())),
        m.on('step', (step) => step.jobId === id && void send().catch(() => stream.close())),
      ];
      // On a shared store another node may run the job: its changes reach the job tables but not
      // this node's monitor events, so the tree is also re-read every JOB_REFRESH_MS.
      const refresh = setInterval(() => void send().catch(() => stream.close()), JOB_REFRESH_MS);
      stream.onClose(() => {
        clearInterval(refresh);
        for (const off of offs) off();
      });
      await send().catch(() => stream.close());
      return ANSWERED;
    },
  );

  routes.add(
    {
      method: 'GET',
      url: '/v1/events',
      role: 'viewer',
      tag: 'jobs',
      summary: 'Every job change, live: server-sent events',
      description:
        "`event: job` with the job record (as in GET /v1/jobs) each time this node's job view changes a job " +
        '(its status, progress, error or end). Jobs other nodes of a shared store run show on their nodes. ' +
        'Comment lines (`: heartbeat`) every 15 s keep the stream open.',
      ok: { status: 200, schema: 'sse' },
      errors: { 404: [ErrorCode.NotFound] },
    },
    ({ reply }) => {
      const m = monitor();
      const stream = api.streams.open(reply);
      // A comment first: the client sees the stream open before the first change.
      reply.raw.write(': coco job events\n\n');
      const off = m.on('job', (job) => void stream.send('job', JSON.stringify(job)));
      stream.onClose(off);
      return ANSWERED;
    },
  );
}
