/**
 * Two do-nothing middle processes for bench/hop.ts, each the floor of one kind of gateway hop:
 *
 *   node --import tsx bench/lib/relay.ts tcp  <backend endpoint> [ignored...]
 *     a TCP relay: every client connection is piped to a new backend connection (no HTTP at all; the client's
 *     SigV4 signature is checked by MinIO itself).
 *   node --import tsx bench/lib/relay.ts http <backend endpoint> <access key> <secret key>
 *     a null gateway: node:http server, then the gateway's own backend client (src/backend, raw reader, SigV4
 *     signing) for `GET /bucket/key`, body piped back with its length; no client auth, no crypto, no headers.
 *
 * Prints `listening <port>` once it accepts connections.
 */
import http from 'node:http';
import net from 'node:net';
import { pipeline } from 'node:stream';
import { createBackend } from '../../src/backend/index.ts';

const [mode, endpoint, accessKey, secretKey] = process.argv.slice(2);
// a clean exit on SIGTERM, so `node --cpu-prof` writes its profile
process.on('SIGTERM', () => process.exit(0));
const backendUrl = new URL(endpoint!);
const backendPort = Number(backendUrl.port || (backendUrl.protocol === 'https:' ? 443 : 80));

function listen(server: net.Server): void {
  server.listen(0, '127.0.0.1', () => console.log(`listening ${(server.address() as net.AddressInfo).port}`));
}

if (mode === 'tcp') {
  listen(
    net.createServer((client) => {
      const upstream = net.connect(backendPort, backendUrl.hostname);
      client.setNoDelay(true);
      upstream.setNoDelay(true);
      client.pipe(upstream).pipe(client);
      const close = () => (client.destroy(), upstream.destroy());
      client.on('error', close).on('close', close);
      upstream.on('error', close).on('close', close);
    }),
  );
} else if (mode === 'http') {
  const backend = createBackend({ kind: 's3', endpoint: endpoint!, accessKey: accessKey!, secretKey: secretKey!, region: 'us-east-1' });
  listen(
    http.createServer((req, res) => {
      req.resume();
      const [, bucket = '', ...rest] = (req.url ?? '/').split('?')[0]!.split('/');
      backend.getObject(bucket, decodeURIComponent(rest.join('/'))).then(
        ({ body, info }) => {
          res.writeHead(200, { 'Content-Length': info.size, ETag: info.etag });
          pipeline(body, res, () => {}); // a failure on either side ends both

        },
        (e: Error) => res.writeHead(500).end(e.message),
      );
    }),
  );
} else {
  console.error('usage: relay.ts tcp <endpoint> | http <endpoint> <access key> <secret key>');
  process.exit(2);
}
