/**
 * Do-nothing middle processes for bench/hop.ts and bench/floor.ts, each the floor of one kind of gateway hop:
 *
 *   node --import tsx bench/lib/relay.ts tcp  <backend endpoint> [ignored...]
 *     a TCP relay: every client connection is piped to a new backend connection (no HTTP at all; the client's
 *     SigV4 signature is checked by MinIO itself).
 *   node --import tsx bench/lib/relay.ts http <backend endpoint> <access key> <secret key>
 *     a null gateway: node:http server, then the gateway's own backend client (src/backend, raw reader, SigV4
 *     signing) for `GET /bucket/key` (body piped back with its length) and `PUT /bucket/key` (request body
 *     streamed to the backend with its length); no client auth, no crypto, no headers.
 *   tcp-aes, http-aes: the same, plus one AES-256-GCM pass over every byte that goes through (see aesPass).
 *   tcp-lean, tcp-lean-aes: design (a) of issue #22 (bench/lib/lean-pipe.ts): the TCP relay with each direction
 *     read into one reusable slab and written on at once, no Node streams on the body path; -aes adds the same
 *     AES-256-GCM pass (aesInspector). Knobs (environment): RELAY_SLAB_KIB (slab per direction, default 1024);
 *     RELAY_AES_KEY=buffer|keyobject (what createCipheriv gets per chunk, default buffer); RELAY_AES_CHUNK_KIB
 *     (bytes per cipher, default 64 as the format; larger values show what the per-chunk cipher costs).
 *
 * Prints `listening <port>` once it accepts connections.
 */
import http from 'node:http';
import net from 'node:net';
import { createCipheriv, createSecretKey, randomBytes } from 'node:crypto';
import { pipeline, Transform } from 'node:stream';
import { createBackend } from '../../src/backend/index.ts';
import { leanRelay } from './lean-pipe.ts';

const [mode, endpoint, accessKey, secretKey] = process.argv.slice(2);
const withAes = mode === 'tcp-aes' || mode === 'http-aes' || mode === 'tcp-lean-aes';
// a clean exit on SIGTERM, so `node --cpu-prof` writes its profile
process.on('SIGTERM', () => process.exit(0));
const backendUrl = new URL(endpoint);
const backendPort = Number(backendUrl.port || (backendUrl.protocol === 'https:' ? 443 : 80));

function listen(server: net.Server): void {
  server.listen(0, '127.0.0.1', () => console.log(`listening ${(server.address() as net.AddressInfo).port}`));
}

const CHUNK = 64 * 1024;

/**
 * What the gateway's crypto costs without its format: every byte goes through AES-256-GCM on node:crypto, a
 * fresh cipher (key schedule, nonce) per 64 KiB and a tag at its end, as the engine seals and opens chunks
 * (docs/FORMAT.md 2.2; GCM costs the same both ways). The bytes themselves are forwarded unchanged, so the
 * client still gets a valid S3 response and the output is dropped; producing it costs what the gateway pays.
 */
function aesPass(): Transform {
  const key = randomBytes(32);
  const nonce = Buffer.alloc(12);
  let counter = 0;
  let cipher = createCipheriv('aes-256-gcm', key, nonce);
  let inChunk = 0;
  return new Transform({
    transform(buf: Buffer, _enc, done) {
      for (let off = 0; off < buf.length; ) {
        const n = Math.min(CHUNK - inChunk, buf.length - off);
        cipher.update(buf.subarray(off, off + n));
        off += n;
        inChunk += n;
        if (inChunk === CHUNK) {
          cipher.final();
          cipher.getAuthTag();
          nonce.writeUInt32BE(++counter, 8);
          cipher = createCipheriv('aes-256-gcm', key, nonce);
          inChunk = 0;
        }
      }
      done(null, buf);
    },
  });
}

/**
 * aesPass without the stream: the same AES-256-GCM work (a fresh cipher per 64 KiB chunk, its tag at the end) over
 * each view it is handed, for the lean relay's callbacks. node:crypto has no way to re-use a GCM cipher for a new
 * nonce (no re-init after final()) and no update() into a caller's buffer: every chunk costs a createCipheriv and
 * every update() a new output Buffer (zero-filled by Node, then overwritten), which is dropped here as in aesPass.
 */
function aesInspector(): (view: Buffer) => void {
  const chunk = Number(process.env.RELAY_AES_CHUNK_KIB ?? 64) * 1024;
  const raw = randomBytes(32);
  const key = process.env.RELAY_AES_KEY === 'keyobject' ? createSecretKey(raw) : raw;
  const nonce = Buffer.alloc(12);
  let counter = 0;
  let cipher = createCipheriv('aes-256-gcm', key, nonce);
  let inChunk = 0;
  return (buf) => {
    for (let off = 0; off < buf.length; ) {
      const n = Math.min(chunk - inChunk, buf.length - off);
      cipher.update(buf.subarray(off, off + n));
      off += n;
      inChunk += n;
      if (inChunk === chunk) {
        cipher.final();
        cipher.getAuthTag();
        nonce.writeUInt32BE(++counter, 8);
        cipher = createCipheriv('aes-256-gcm', key, nonce);
        inChunk = 0;
      }
    }
  };
}

if (mode === 'tcp-lean' || mode === 'tcp-lean-aes') {
  const slabBytes = Number(process.env.RELAY_SLAB_KIB ?? 1024) * 1024;
  // pauseOnConnect: nothing is read before leanRelay moves the socket's handle onto its slab
  listen(
    net.createServer({ pauseOnConnect: true }, (client) =>
      leanRelay(client, backendPort, backendUrl.hostname, withAes ? { slabBytes, inspectUp: aesInspector(), inspectDown: aesInspector() } : { slabBytes }),
    ),
  );
} else if (mode === 'tcp' || mode === 'tcp-aes') {
  listen(
    net.createServer((client) => {
      const upstream = net.connect(backendPort, backendUrl.hostname);
      client.setNoDelay(true);
      upstream.setNoDelay(true);
      if (withAes) {
        client.pipe(aesPass()).pipe(upstream);
        upstream.pipe(aesPass()).pipe(client);
      } else client.pipe(upstream).pipe(client);
      const close = () => (client.destroy(), upstream.destroy());
      client.on('error', close).on('close', close);
      upstream.on('error', close).on('close', close);
    }),
  );
} else if (mode === 'http' || mode === 'http-aes') {
  const backend = createBackend({ kind: 's3', endpoint: endpoint, accessKey: accessKey, secretKey: secretKey, region: 'us-east-1' });
  const fail = (res: http.ServerResponse) => (e: Error) => {
    if (res.headersSent) res.destroy();
    else res.writeHead(500).end(e.message);
  };
  listen(
    http.createServer((req, res) => {
      const [, bucket = '', ...rest] = (req.url ?? '/').split('?')[0].split('/');
      const key = decodeURIComponent(rest.join('/'));
      if (req.method === 'PUT') {
        // the benchmark's client sends UNSIGNED-PAYLOAD bodies: the bytes on the wire are the object
        if (String(req.headers['x-amz-content-sha256']).startsWith('STREAMING')) return void res.writeHead(501).end('aws-chunked body');
        const body = withAes ? pipeline(req, aesPass(), () => {}) : req;
        backend.putObject(bucket, key, body, { size: Number(req.headers['content-length']) }).then(({ etag }) => res.writeHead(200, { ETag: etag }).end(), fail(res));
        return;
      }
      req.resume();
      backend.getObject(bucket, key).then(({ body, info }) => {
        res.writeHead(200, { 'Content-Length': info.size, ETag: info.etag });
        if (withAes) pipeline(body, aesPass(), res, () => {});
        else pipeline(body, res, () => {}); // a failure on either side ends both
      }, fail(res));
    }),
  );
} else {
  console.error('usage: relay.ts tcp|tcp-aes|tcp-lean|tcp-lean-aes <endpoint> | http|http-aes <endpoint> <access key> <secret key>');
  process.exit(2);
}
