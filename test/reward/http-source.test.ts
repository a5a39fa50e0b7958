import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpSource } from '../../src/reward/index.js';
import { batchOf } from './helpers.js';

type Handler = (body: unknown, res: ServerResponse, req: IncomingMessage) => void;

let server: Server;
let base = '';
const routes = new Map<string, Handler>();
const hits = new Map<string, number>();
const seen: unknown[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => {
      raw += c;
    });
    req.on('end', () => {
      const path = req.url ?? '/';
      hits.set(path, (hits.get(path) ?? 0) + 1);
      const body = JSON.parse(raw) as unknown;
      seen.push({ body, auth: req.headers.authorization });
      const h = routes.get(path);
      if (!h) {
        res.writeHead(404).end('no such route');
        return;
      }
      h(body, res, req);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const json = (res: ServerResponse, status: number, value: unknown) =>
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value));

routes.set('/len', (body, res) => {
  const { completions } = body as { completions: string[] };
  json(res, 200, { rewards: completions.map((c) => c.length) });
});
routes.set('/flaky', (body, res) => {
  if ((hits.get('/flaky') ?? 0) === 1) {
    res.writeHead(500).end('database is warming up');
    return;
  }
  json(res, 200, { rewards: (body as { completions: string[] }).completions.map(() => 1) });
});
routes.set('/down', (_b, res) => {
  res.writeHead(503).end('maintenance');
});
routes.set('/bad-request', (_b, res) => {
  json(res, 400, { error: 'column answer missing' });
});
routes.set('/slow', (_b, res) => {
  setTimeout(() => json(res, 200, { rewards: [1] }), 2_000).unref();
});
routes.set('/short', (_b, res) => {
  json(res, 200, { rewards: [1] });
});
routes.set('/not-json', (_b, res) => {
  res.writeHead(200).end('<html>oops</html>');
});

const source = (path: string, extra: Record<string, unknown> = {}) =>
  httpSource({
    name: 'judge',
    url: `${base}${path}`,
    timeoutMs: 1_000,
    retries: 2,
    backoffMs: 10,
    ...extra,
  });

describe('httpSource (a real local server)', () => {
  it('POSTs prompts, completions and columns and returns the rewards', async () => {
    seen.length = 0;
    const s = source('/len', { headers: { authorization: 'Bearer t' } });
    const out = await s.score(batchOf(['abc', 'de'], { answer: ['1', '2'] }, ['p', 'q']));
    expect([...out]).toEqual([3, 2]);
    expect(seen[0]).toEqual({
      body: { prompts: ['p', 'q'], completions: ['abc', 'de'], columns: { answer: ['1', '2'] } },
      auth: 'Bearer t',
    });
  });

  it('retries a 500 and succeeds on the next attempt', async () => {
    const out = await source('/flaky').score(batchOf(['a', 'b']));
    expect([...out]).toEqual([1, 1]);
    expect(hits.get('/flaky')).toBe(2);
  });

  it('gives up on a 5xx after the retries, with status and body', async () => {
    await expect(source('/down').score(batchOf(['a']))).rejects.toMatchObject({
      code: 'BAD_REWARD',
      message: `reward 'judge': POST ${base}/down failed after 3 attempts: HTTP 503 Service Unavailable: maintenance`,
    });
    expect(hits.get('/down')).toBe(3);
  });

  it('does not retry a 4xx', async () => {
    await expect(source('/bad-request').score(batchOf(['a']))).rejects.toThrow(
      `reward 'judge': POST ${base}/bad-request failed after 1 attempt: HTTP 400 Bad Request: {"error":"column answer missing"}`,
    );
    expect(hits.get('/bad-request')).toBe(1);
  });

  it('times out a slow server (each attempt)', async () => {
    const s = source('/slow', { timeoutMs: 150, retries: 1 });
    await expect(s.score(batchOf(['a']))).rejects.toThrow(
      `reward 'judge': POST ${base}/slow failed after 2 attempts: no response within 150 ms`,
    );
    expect(hits.get('/slow')).toBe(2);
  });

  it('refuses a wrong count and a body that is not JSON', async () => {
    await expect(source('/short').score(batchOf(['a', 'b', 'c']))).rejects.toMatchObject({
      code: 'BAD_REWARD',
      message: "reward 'judge': returned 1 rewards for a batch of 3 rows",
    });
    await expect(source('/not-json').score(batchOf(['a']))).rejects.toThrow(
      /failed after 1 attempt: response is not JSON: <html>oops<\/html>/,
    );
  });

  it('retries a refused connection', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const s = httpSource({
      name: 'gone',
      url: `http://127.0.0.1:${port}/`,
      retries: 1,
      backoffMs: 1,
    });
    await expect(s.score(batchOf(['a']))).rejects.toThrow(/failed after 2 attempts: network error/);
  });

  it('stops when aborted', async () => {
    const ac = new AbortController();
    const p = source('/slow', { timeoutMs: 5_000 }).score(batchOf(['a']), { signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    await expect(p).rejects.toMatchObject({ code: 'TASK_ABORTED' });
  });

  it('names bad options', () => {
    expect(() => httpSource({ name: 'x', url: 'ftp://x' })).toThrow(
      "httpSource option 'url': must be an http(s) URL",
    );
    expect(() => httpSource({ name: 'x', url: base, retries: -1 })).toThrow(
      "httpSource option 'retries': must be an integer ≥ 0",
    );
    expect(() => httpSource({ name: 'x', url: base, retry: 1 } as never)).toThrow(
      /unknown option 'retry'/,
    );
  });
});
