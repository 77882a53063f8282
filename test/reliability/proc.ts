/**
 * The fault and security tests' gateway process: quiet (warn, no access log), one crypto thread, no config file,
 * the caller's data dir and credentials. Launched by test/helpers/gateway-process.ts.
 *
 *   const g = await spawnGateway({ dataDir, env: { LAKECRYPT_BACKEND: 's3', ... } });
 *   g.url, g.adminUrl, g.output()   // stdout + stderr so far
 *   g.kill()                        // SIGKILL (a crash)
 */
import { randomBytes } from 'node:crypto';
import { ROOT, launchGateway, type LaunchedGateway } from '../helpers/gateway-process.ts';

export { ROOT };

export interface GatewayProc extends LaunchedGateway {
  accessKey: string;
  secretKey: string;
}

export async function spawnGateway(o: { dataDir: string; env?: Record<string, string>; accessKey?: string; secretKey?: string }): Promise<GatewayProc> {
  const accessKey = o.accessKey ?? `AK${randomBytes(6).toString('hex').toUpperCase()}`;
  const secretKey = o.secretKey ?? randomBytes(24).toString('base64url');
  const g = await launchGateway({
    ...process.env,
    LAKECRYPT_CONFIG: undefined,
    LAKECRYPT_PORT: '0',
    LAKECRYPT_ADMIN_PORT: '0',
    LAKECRYPT_DATA_DIR: o.dataDir,
    LAKECRYPT_ACCESS_KEY: accessKey,
    LAKECRYPT_SECRET_KEY: secretKey,
    LAKECRYPT_LOG_LEVEL: 'warn',
    LAKECRYPT_ACCESS_LOG: 'false',
    LAKECRYPT_CRYPTO_THREADS: '1',
    ...(o.env ?? {}),
  });
  return { ...g, accessKey, secretKey };
}
