/**
 * What the gateway prints when it is up (and when it cannot listen): endpoints, the dashboard, the root user,
 * and a line to paste into a shell for S3 clients. The root secret is printed only on the start that generated
 * it (credentials.json created just now): later starts, and compose logs kept for ever, do not hold it.
 */
import type { Config } from './config.ts';

/**
 * Response header the S3 port adds to requests under /admin/ (the admin API's paths, sent to the wrong port):
 * the admin port, so that the CLI can say where the admin API is.
 */
export const ADMIN_PORT_HEADER = 'x-lakecrypt-admin-port';

/** A listener on every address is reached from this machine on loopback. */
function reachable(url: string): string {
  const u = new URL(url);
  if (u.hostname === '0.0.0.0' || u.hostname === '[::]') u.hostname = '127.0.0.1';
  return u.origin;
}

/** A shell word that gives the secret without printing it: read from where it is kept. */
function secretWord(cfg: Config, env: NodeJS.ProcessEnv): string {
  const shellSafe = (p: string) => !/['"$`\\\s]/.test(p);
  if (cfg.meta.credentials === 'generated' || cfg.meta.credentials === 'ephemeral') return cfg.secretKey;
  if (cfg.meta.credentials === 'stored') {
    const f = cfg.meta.credentialsFile;
    return shellSafe(f) ? `"$(node -p "require('${f}').secretKey")"` : `<secretKey in ${f}>`;
  }
  if (env.LAKECRYPT_SECRET_KEY) return '"$LAKECRYPT_SECRET_KEY"';
  const file = env.LAKECRYPT_SECRET_KEY_FILE;
  if (file) return shellSafe(file) ? `"$(cat ${file})"` : `<the contents of ${file}>`;
  return `<secretKey in ${cfg.meta.configFile ?? 'the configuration'}>`;
}

/** The banner line after the admin API's. */
export function dashboardLine(adminUrl: string): string {
  return `  dashboard:     ${reachable(adminUrl)}/dashboard`;
}

/** The banner's last lines: the root secret (or where it is), the line for S3 clients, the admin CLI. */
export function credentialLines(cfg: Config, s3Url: string, adminUrl: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const secret =
    cfg.meta.credentials === 'generated'
      ? `${cfg.secretKey}   (generated now and stored 0600 in ${cfg.meta.credentialsFile}; printed on this first start only)`
      : cfg.meta.credentials === 'ephemeral'
        ? `${cfg.secretKey}   (generated for this run only)`
        : cfg.meta.credentials === 'stored'
          ? `in ${cfg.meta.credentialsFile} (printed on the first start only)`
          : '(as configured)';
  const admin = reachable(adminUrl);
  return [
    `  secret key:    ${secret}`,
    ``,
    `S3 clients (AWS CLI, SDKs), paste into a shell:`,
    `  export AWS_ACCESS_KEY_ID=${cfg.accessKey} AWS_SECRET_ACCESS_KEY=${secretWord(cfg, env)} AWS_DEFAULT_REGION=${cfg.region} AWS_ENDPOINT_URL=${reachable(s3Url)}`,
    cfg.meta.credentials === 'settings' || cfg.meta.credentials === 'ephemeral'
      ? `Admin CLI: lakecrypt login --url ${admin}, then lakecrypt keys list`
      : `Admin CLI: lakecrypt keys list   (reads ${cfg.meta.credentialsFile} by itself; elsewhere: lakecrypt login --url ${admin})`,
  ];
}

/** The settings that name a listener's port, for a message. */
function portSetting(cfg: Config, port: number | undefined): string {
  if (port !== undefined && port === cfg.adminPort && port !== cfg.port) return 'LAKECRYPT_ADMIN_PORT, the admin API';
  if (port !== undefined && port === cfg.port && port !== cfg.adminPort) return 'LAKECRYPT_PORT, the S3 API';
  return 'see LAKECRYPT_PORT, LAKECRYPT_ADMIN_PORT and the other ports configured';
}

/**
 * One line for an error a listener raised at start (port in use, a privileged port, an address that is not this
 * machine's), or null for any other error.
 */
export function listenFailure(e: unknown, cfg: Config): string | null {
  const err = e as { code?: string; port?: number; address?: string; syscall?: string };
  if (err?.syscall !== 'listen' && err?.syscall !== 'bind') return null;
  const port = err.port;
  const where = portSetting(cfg, port);
  switch (err.code) {
    case 'EADDRINUSE':
      return `port ${port} in use (${where}, on ${err.address}): is another lakecrypt running? Stop it, or choose another port`;
    case 'EACCES':
      return `port ${port}: permission denied (${where}; ports below 1024 need privileges): choose a port from 1024 up`;
    case 'EADDRNOTAVAIL':
      return `cannot listen on ${err.address}:${port}: not an address of this machine (LAKECRYPT_HOST / LAKECRYPT_ADMIN_HOST)`;
    default:
      return null;
  }
}
