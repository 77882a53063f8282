/**
 * The gateway's own HTTP/1.1 client for backend GET/HEAD, and PUT/DELETE with a Buffer body
 * (src/backend/raw-http.ts), against a server that writes exact bytes: framings and splits a real S3 server may
 * produce, keep-alive reuse, stale sockets, truncation, backpressure, whole request bodies. Against the real MinIO
 * it is covered by every s3-backend test (test/backend/s3.test.ts and the gateway suites), which go through it.
 */
import { createHash } from 'node:crypto';
import net, { type AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import http from 'node:http';
import { RawHttpPool, RawNetworkError, RawUnsupported } from '../../src/backend/raw-http.ts';
import { FastS3 } from '../../src/backend/s3-fast.ts';
import { S3Backend } from '../../src/backend/s3.ts';

interface Server {
  port: number;
  connections: number;
  maxConcurrent: number;
  heads: string[];
  /** Each request's body (by its Content-Length), in the order of `heads`. */
  bodies: Buffer[];
  close(): Promise<void>;
}

/** A server that hands each request head (and its socket) to `answer`, which writes the raw response bytes. */
async function rawServer(answer: (head: string, sock: net.Socket, n: number) => void | Promise<void>): Promise<Server> {
  const sockets = new Set<net.Socket>();
  let open = 0;
  const srv: Server = { port: 0, connections: 0, maxConcurrent: 0, heads: [], bodies: [], close: async () => {} };
  const server = net.createServer((sock) => {
    sockets.add(sock);
    srv.connections++;
    srv.maxConcurrent = Math.max(srv.maxConcurrent, ++open);
    sock.on('close', () => {
      open--;
      sockets.delete(sock);
    });
    sock.on('error', () => {});
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      for (let i = buf.indexOf('\r\n\r\n'); i >= 0; i = buf.indexOf('\r\n\r\n')) {
        const head = buf.slice(0, i);
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < i + 4 + length) break; // the rest of the body is still on its way
        srv.bodies.push(Buffer.from(buf.slice(i + 4, i + 4 + length), 'latin1'));
        buf = buf.slice(i + 4 + length);
        srv.heads.push(head);
        void answer(head, sock, srv.heads.length);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  srv.port = (server.address() as AddressInfo).port;
  srv.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return srv;
}

/** Write `data` in pieces of `size` bytes, each in its own TCP write. */
async function dribble(sock: net.Socket, data: Buffer, size: number) {
  for (let i = 0; i < data.length; i += size) {
    sock.write(data.subarray(i, i + size));
    await new Promise((r) => setImmediate(r));
  }
}

const collect = async (body: NodeJS.ReadableStream) => {
  const parts: Buffer[] = [];
  for await (const c of body) parts.push(c as Buffer);
  return Buffer.concat(parts);
};

const payload = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + 3) & 0xff));
const ok = (body: Buffer, extra = '') => Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n${extra}\r\n`), body]);

let servers: Server[] = [];
let pools: RawHttpPool[] = [];
afterEach(async () => {
  for (const p of pools) p.close();
  for (const s of servers) await s.close();
  servers = [];
  pools = [];
});
async function setup(answer: Parameters<typeof rawServer>[0], maxSockets = 4) {
  const s = await rawServer(answer);
  const p = new RawHttpPool('127.0.0.1', s.port, maxSockets, 5_000);
  servers.push(s);
  pools.push(p);
  return { s, p };
}

describe('raw HTTP/1.1 reader for backend GET/HEAD', () => {
  it('reads a Content-Length body written a few bytes at a time, headers lower-cased and joined, on one kept-alive socket', async () => {
    const body = payload(70_000);
    const { s, p } = await setup((_h, sock) => dribble(sock, ok(body, 'ETag: "abc"\r\nx-amz-meta-a: 1\r\nX-Amz-Meta-A: 2\r\n'), 997));
    for (let i = 0; i < 3; i++) {
      const r = await p.request('GET', '/b/k?x=1', { host: 'h', 'x-amz-date': 'd' });
      expect(r.status).toBe(200);
      expect(r.headers.etag).toBe('"abc"');
      expect(r.headers['x-amz-meta-a']).toBe('1, 2');
      expect((await collect(r.body)).equals(body)).toBe(true);
    }
    expect(s.connections).toBe(1);
    expect(s.heads[0]).toBe('GET /b/k?x=1 HTTP/1.1\r\nhost: h\r\nx-amz-date: d');
  });

  it('decodes the chunked transfer coding (extensions, trailers, any split), then reuses the socket', async () => {
    const body = payload(50_000);
    const framed = Buffer.concat([
      Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'),
      Buffer.from('3;ext=1\r\n'),
      body.subarray(0, 3),
      Buffer.from('\r\n'),
      Buffer.from(`${(body.length - 3).toString(16).toUpperCase()}\r\n`),
      body.subarray(3),
      Buffer.from('\r\n0\r\nx-trailer: t\r\n\r\n'),
    ]);
    for (const split of [1, 5, 4096, framed.length]) {
      const { s, p } = await setup((_h, sock) => dribble(sock, framed, split));
      for (let i = 0; i < 2; i++) {
        const r = await p.request('GET', '/b/k', {});
        expect((await collect(r.body)).equals(body)).toBe(true);
      }
      expect(s.connections).toBe(1);
    }
  });

  it('a malformed chunk size fails the body; it never ends cleanly short', async () => {
    const { p } = await setup((_h, sock) => void sock.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\nzz\r\n'));
    const r = await p.request('GET', '/b/k', {});
    await expect(collect(r.body)).rejects.toThrow(/malformed chunked body/);
  });

  it('HEAD: no body whatever Content-Length says; 204 and 304 likewise; the socket carries the next request', async () => {
    const { s, p } = await setup((head, sock) => {
      if (head.startsWith('HEAD')) sock.write('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n');
      else if (head.includes('/304')) sock.write('HTTP/1.1 304 Not Modified\r\nETag: "e"\r\n\r\n');
      else sock.write(ok(Buffer.from('after')));
    });
    const h = await p.request('HEAD', '/b/k', {});
    expect(h.headers['content-length']).toBe('1000');
    expect((await collect(h.body)).length).toBe(0);
    const n = await p.request('GET', '/b/304', {});
    expect(n.status).toBe(304);
    expect((await collect(n.body)).length).toBe(0);
    const g = await p.request('GET', '/b/k', {});
    expect((await collect(g.body)).toString()).toBe('after');
    expect(s.connections).toBe(1);
  });

  it('skips an interim 100 Continue head', async () => {
    const { p } = await setup((_h, sock) => void sock.write(Buffer.concat([Buffer.from('HTTP/1.1 100 Continue\r\n\r\n'), ok(Buffer.from('x'))])));
    const r = await p.request('GET', '/b/k', {});
    expect(r.status).toBe(200);
    expect((await collect(r.body)).toString()).toBe('x');
  });

  it('refuses what it does not speak before reading a body: HTTP/1.0, no length, another coding', async () => {
    for (const head of ['HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx', 'HTTP/1.1 200 OK\r\n\r\nbody-until-close', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n']) {
      const { p } = await setup((_h, sock) => void sock.end(head));
      await expect(p.request('GET', '/b/k', {})).rejects.toBeInstanceOf(RawUnsupported);
    }
  });

  it('the S3 client asks again through node:http when the raw reader refuses an answer (HTTP/1.0, body until close)', async () => {
    const { s, p } = await setup((_h, sock) => void sock.end('HTTP/1.0 200 OK\r\nx-amz-meta-k: v\r\n\r\nold-style body'));
    const agent = new http.Agent({ keepAlive: true });
    const fast = new FastS3(`http://127.0.0.1:${s.port}`, 'ak', 'sk', 'us-east-1', agent, 1, p);
    const r = await fast.call('GET', 'b', 'k');
    expect(r.status).toBe(200);
    expect(r.headers['x-amz-meta-k']).toBe('v');
    expect((await collect(r.body)).toString()).toBe('old-style body');
    expect(s.heads.length).toBe(2); // once raw (refused before reading the body), once through node:http
    agent.destroy();
  });

  it('a reused socket the server closed while idle is replaced without an error', async () => {
    const { s, p } = await setup((_h, sock) => {
      sock.write(ok(Buffer.from('hello')));
      // the server's idle timeout: it closes the connection after answering
      setTimeout(() => sock.end(), 30);
    });
    expect((await collect((await p.request('GET', '/b/k', {})).body)).toString()).toBe('hello');
    await new Promise((r) => setTimeout(r, 120));
    expect((await collect((await p.request('GET', '/b/k', {})).body)).toString()).toBe('hello');
    expect(s.connections).toBe(2);
  });

  it('a request on a reused socket that the server drops unanswered is sent again on a fresh one (never on another idle one)', async () => {
    const served = new WeakSet<net.Socket>();
    const { s, p } = await setup(async (_h, sock) => {
      if (served.has(sock)) return void sock.destroy(); // the race: closed just as the request went out
      served.add(sock);
      await new Promise((r) => setTimeout(r, 20));
      sock.write(ok(Buffer.from('fine')));
    });
    const first = await Promise.all([1, 2, 3].map(() => p.request('GET', '/b/k', {}).then((r) => collect(r.body))));
    expect(first.map(String)).toEqual(['fine', 'fine', 'fine']);
    expect(s.connections).toBe(3);
    expect((await collect((await p.request('GET', '/b/k', {})).body)).toString()).toBe('fine');
    // one reused socket failed, the other two idle ones were dropped unused, the answer came on a 4th connection
    expect(s.connections).toBe(4);
    expect(s.heads.length).toBe(5);
  });

  it('a server that dies mid-body fails the body stream with a network error (never a short clean end)', async () => {
    const body = payload(100_000);
    const { p } = await setup((_h, sock) => {
      sock.write(ok(body).subarray(0, 60_000));
      setTimeout(() => sock.destroy(), 20);
    });
    const r = await p.request('GET', '/b/k', {});
    const err = await collect(r.body).then(() => null, (e) => e);
    expect(err).toBeInstanceOf(RawNetworkError);
    expect(err.code).toBe('ECONNRESET');
  });

  it('a failure before the consumer is attached reaches it once it listens; piped without an error listener it never ends cleanly', async () => {
    const { p } = await setup((_h, sock) => {
      sock.write(ok(payload(100_000)).subarray(0, 50_000));
      setTimeout(() => sock.destroy(), 10);
    });
    const late = await p.request('GET', '/b/k', {});
    await new Promise((r) => setTimeout(r, 100)); // the socket died meanwhile
    await expect(collect(late.body)).rejects.toBeInstanceOf(RawNetworkError);
    const listened = await p.request('GET', '/b/k', {});
    await new Promise((r) => setTimeout(r, 100));
    const heard = await new Promise((r) => listened.body.on('error', r));
    expect(heard).toBeInstanceOf(RawNetworkError);
    const unheard = await p.request('GET', '/b/k', {});
    await new Promise((r) => setTimeout(r, 100));
    const sink = new PassThrough();
    unheard.body.pipe(sink);
    sink.resume();
    await new Promise((r) => setTimeout(r, 100));
    expect(sink.writableEnded).toBe(false); // no clean end: the reader cannot take a part for the whole body
    unheard.body.destroy();
  });

  it('a server that answers nothing and closes a fresh socket is a network error, not retried forever', async () => {
    const { s, p } = await setup((_h, sock) => void sock.destroy());
    await expect(p.request('GET', '/b/k', {})).rejects.toBeInstanceOf(RawNetworkError);
    expect(s.heads.length).toBe(1);
  });

  it('backpressure: a slow reader of 16 MiB holds a bounded amount in the body stream', async () => {
    const size = 16 * 1024 * 1024;
    const body = payload(size);
    const { p } = await setup((_h, sock) => void sock.write(ok(body)));
    const r = await p.request('GET', '/b/k', {});
    let got = 0;
    let peak = 0;
    for await (const c of r.body) {
      got += (c as Buffer).length;
      peak = Math.max(peak, r.body.readableLength);
      await new Promise((res) => setTimeout(res, 1));
    }
    expect(got).toBe(size);
    // the stream's high-water mark (512 KiB) plus one read (256 KiB) at most
    expect(peak).toBeLessThanOrEqual(768 * 1024);
  });

  it('a body abandoned half-way is never reused for the next request', async () => {
    const body = payload(4 * 1024 * 1024);
    const { s, p } = await setup((_h, sock) => void sock.write(ok(body)));
    const r = await p.request('GET', '/b/k', {});
    for await (const _ of r.body) break; // read one chunk, then drop it (destroys the stream)
    const again = await p.request('GET', '/b/k', {});
    expect((await collect(again.body)).equals(body)).toBe(true);
    expect(s.connections).toBe(2);
  });

  it('never more than maxSockets connections; queued requests all complete', async () => {
    const { s, p } = await setup(async (_h, sock) => {
      await new Promise((r) => setTimeout(r, 20));
      sock.write(ok(Buffer.from('y')));
    }, 2);
    const all = await Promise.all(Array.from({ length: 7 }, () => p.request('GET', '/b/k', {}).then((r) => collect(r.body))));
    expect(all.map((b) => b.toString())).toEqual(Array(7).fill('y'));
    expect(s.maxConcurrent).toBeLessThanOrEqual(2);
    expect(s.connections).toBe(2);
  });

  it('refuses to write a header or target that would split the request', async () => {
    const { s, p } = await setup((_h, sock) => void sock.write(ok(Buffer.from('z'))));
    await expect(p.request('GET', '/b/k', { range: 'bytes=0-1\r\nx-evil: 1' })).rejects.toThrow(/invalid request header/);
    await expect(p.request('GET', '/b/k HTTP/1.1\r\nx: y', {})).rejects.toThrow(/request target/);
    expect(s.heads.length).toBe(0);
  });
});

describe('raw HTTP/1.1 client for PUT and DELETE with a Buffer body (s3-fast.ts rawFor)', () => {
  const minioOk = (extra = '') => `HTTP/1.1 200 OK\r\nServer: MinIO\r\nContent-Length: 0\r\n${extra}\r\n`;
  /** A FastS3 over `p`, with the requests that went through the pool counted. */
  function fastOver(port: number, p: RawHttpPool) {
    const agent = new http.Agent({ keepAlive: true });
    const viaPool: string[] = [];
    const request = p.request.bind(p);
    p.request = (method, target, headers, body) => {
      viaPool.push(method);
      return request(method, target, headers, body);
    };
    return { fast: new FastS3(`http://127.0.0.1:${port}`, 'ak', 'sk', 'us-east-1', agent, 3, p), viaPool, agent };
  }

  it("sends the head and the body whole, reads the store's answer, and the socket carries the next request", async () => {
    const body = payload(5000);
    const { s, p } = await setup((_h, sock) => void sock.write(minioOk('ETag: "e1"\r\n')));
    for (let i = 0; i < 3; i++) {
      const r = await p.request('PUT', '/b/k', { host: 'h', 'content-length': String(body.length) }, body);
      expect(r.status).toBe(200);
      expect(r.headers.etag).toBe('"e1"');
      expect((await collect(r.body)).length).toBe(0);
    }
    expect(s.connections).toBe(1);
    expect(s.heads[0]).toBe('PUT /b/k HTTP/1.1\r\nhost: h\r\ncontent-length: 5000');
    expect(s.bodies.map((b) => b.equals(body))).toEqual([true, true, true]);
  });

  it('PUT and DELETE go through the pool once the store answered as MinIO; before that, and POST, through node:http', async () => {
    const { s, p } = await setup((h, sock) => {
      if (h.startsWith('POST')) return void sock.write('HTTP/1.1 200 OK\r\nServer: MinIO\r\nContent-Length: 9\r\n\r\n<Done/>\r\n');
      sock.write(h.startsWith('DELETE') ? 'HTTP/1.1 204 No Content\r\nServer: MinIO\r\n\r\n' : minioOk());
    });
    const { fast, viaPool, agent } = fastOver(s.port, p);
    const body = Buffer.from('ciphertext and header');
    const put = () => fast.send({ method: 'PUT', bucket: 'b', key: 'k', body });
    expect((await put()).status).toBe(200); // the store is not known yet: node:http
    expect(viaPool).toEqual([]);
    expect((await fast.send({ method: 'HEAD', bucket: 'b', key: 'k' })).status).toBe(200);
    expect((await put()).status).toBe(200);
    expect((await fast.send({ method: 'DELETE', bucket: 'b', key: 'k' })).status).toBe(204);
    expect((await fast.send({ method: 'POST', bucket: 'b', key: 'k', query: { uploads: '' }, body })).status).toBe(200);
    expect(viaPool).toEqual(['HEAD', 'PUT', 'DELETE']);
    // every body arrived whole, signed with its SHA-256
    const puts = s.heads.map((h, i) => [h, s.bodies[i]] as const).filter(([h]) => h.startsWith('PUT'));
    expect(puts.length).toBe(2);
    for (const [h, b] of puts) {
      expect(b.equals(body)).toBe(true);
      expect(h).toContain(`x-amz-content-sha256: ${createHash('sha256').update(body).digest('hex')}`);
    }
    agent.destroy();
  });

  it('an answer the pool does not read, to a PUT that may have taken effect, is an error and is not sent again', async () => {
    const { s, p } = await setup((h, sock) => {
      if (h.startsWith('HEAD')) return void sock.write(minioOk());
      sock.end('HTTP/1.0 200 OK\r\nServer: MinIO\r\n\r\n');
    });
    const { fast, viaPool, agent } = fastOver(s.port, p);
    await fast.send({ method: 'HEAD', bucket: 'b', key: 'k' });
    await expect(fast.send({ method: 'PUT', bucket: 'b', key: 'k', body: Buffer.from('x'), headers: { 'if-none-match': '*' } })).rejects.toMatchObject({ code: 'ServiceUnavailable' });
    expect(viaPool).toEqual(['HEAD', 'PUT']);
    expect(s.heads.filter((h) => h.startsWith('PUT')).length).toBe(1);
    agent.destroy();
  });

  it('short exchanges have a pool of their own: a PUT goes through while every stream socket is held by a download', async () => {
    const { s } = await setup((h, sock) => {
      if (h.startsWith('GET')) return void sock.write('HTTP/1.1 200 OK\r\nServer: MinIO\r\nContent-Length: 1000000\r\n\r\nfirst bytes'); // the rest never comes
      sock.write(minioOk());
    });
    // one read socket, whose idle time-out (60 s) outlasts the test: a write queued behind it would wait that long
    const p = new RawHttpPool('127.0.0.1', s.port, 1, 60_000);
    const writes = new RawHttpPool('127.0.0.1', s.port, 1, 5_000);
    pools.push(p, writes);
    const agent = new http.Agent({ keepAlive: true });
    const fast = new FastS3(`http://127.0.0.1:${s.port}`, 'ak', 'sk', 'us-east-1', agent, 1, p, 'auto', writes);
    await fast.send({ method: 'HEAD', bucket: 'b', key: 'k' });
    const download = await fast.send({ method: 'GET', bucket: 'b', key: 'big', stream: true }); // holds the stream pool's one socket
    expect(download.status).toBe(200);
    const put = fast.send({ method: 'PUT', bucket: 'b', key: 'small', body: Buffer.from('sealed') }).then((r) => r.status);
    const late = new Promise<string>((r) => setTimeout(() => r('still queued after 10 s'), 10_000).unref());
    expect(await Promise.race([put, late])).toBe(200);
    expect(s.bodies[s.heads.findIndex((h) => h.startsWith('PUT'))]?.toString()).toBe('sealed');
    download.body.destroy();
    agent.destroy();
  });

  it("the S3 backend: a download's header and key reads (getBuffer) and HEADs never wait behind downloads holding every stream socket", async () => {
    const { s } = await setup((h, sock) => {
      const target = h.split(' ')[1];
      if (h.startsWith('GET') && target.startsWith('/b/big')) return void sock.write('HTTP/1.1 200 OK\r\nServer: MinIO\r\nContent-Length: 1000000\r\n\r\nfirst bytes'); // the rest never comes
      if (h.startsWith('GET')) return void sock.write(ok(Buffer.from('sealed header'), 'Server: MinIO\r\n'));
      sock.write(minioOk());
    });
    const backend = new S3Backend({ endpoint: `http://127.0.0.1:${s.port}`, accessKey: 'ak', secretKey: 'sk', maxSockets: 1, maxAttempts: 1 });
    try {
      const download = await backend.getObject('b', 'big'); // the one stream socket, held
      const late = <T,>(p: Promise<T>) => Promise.race([p, new Promise<string>((r) => setTimeout(() => r('still queued after 10 s'), 10_000).unref())]);
      expect(((await late(backend.getBuffer('meta', 'hdr'))) as { data: Buffer }).data.toString()).toBe('sealed header');
      expect(((await late(backend.headObject('b', 'k'))) as { size: number }).size).toBe(0);
      download.body.destroy();
    } finally {
      await backend.close();
    }
  });

  it('a PUT on a reused socket the store dropped unanswered is sent again whole on a fresh one', async () => {
    const served = new WeakSet<net.Socket>();
    const { s, p } = await setup((_h, sock) => {
      if (served.has(sock)) return void sock.destroy();
      served.add(sock);
      sock.write(minioOk());
    });
    const body = payload(3000);
    expect((await p.request('PUT', '/b/k', { 'content-length': '3000' }, body)).status).toBe(200);
    expect((await p.request('PUT', '/b/k', { 'content-length': '3000' }, body)).status).toBe(200);
    expect(s.connections).toBe(2);
    expect(s.bodies.length).toBe(3);
    expect(s.bodies.every((b) => b.equals(body))).toBe(true);
  });
});
