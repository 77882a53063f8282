/**
 * Builds a CMK provider from a configuration entry (one `LAKECRYPT_CMKS` element, or the default CMK assembled
 * from `LAKECRYPT_CMK` and its provider's settings):
 *
 *   { "id": "default",  "provider": "local" }                                   dataDir from the gateway config
 *   { "id": "hsm",      "provider": "pkcs11", "token": "t", "pin": "…", "keyLabel": "…" }   module from the config
 *   { "id": "tenant-a", "provider": "transit", "addr": "https://bao:8200", "token": "…" | "tokenFile": "/run/…",
 *                       "key": "tenant-a", "mount": "transit", "namespace": "…" }
 *   { "id": "tenant-b", "provider": "awskms", "keyId": "arn:aws:kms:…" | "alias/…" | "<uuid>",
 *                       "region": "eu-west-1", "endpoint": "https://kms.eu-west-1.amazonaws.com" }
 *
 * Validated with zod; an error names the CMK and the field and what was expected, never the value (some are
 * secrets: token, pin, secretAccessKey, sessionToken). AWS credentials come from the standard AWS chain
 * (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, profiles, instance roles) unless the entry
 * gives accessKeyId + secretAccessKey.
 */
import { z } from 'zod';
import { S3Error } from '../errors.ts';
import { AwsKmsCmkProvider } from './awskms-cmk.ts';
import { LocalCmkProvider } from './local-cmk.ts';
import { Pkcs11CmkProvider } from './pkcs11-cmk.ts';
import { TransitCmkProvider } from './transit-cmk.ts';
import type { CmkKind, CmkProvider } from './types.ts';

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const httpUrl = (what: string) =>
  z.string({ error: `expected ${what}` }).refine(
    (s) => {
      try {
        const u = new URL(s);
        return (u.protocol === 'http:' || u.protocol === 'https:') && !u.username && !u.password;
      } catch {
        return false;
      }
    },
    { error: `expected ${what}` },
  );
const text = (what: string, max = 256) => z.string({ error: `expected ${what}` }).min(1, { error: `expected ${what}` }).max(max, { error: `expected ${what}` });

const id = z.string({ error: 'expected an id of 1-64 characters from A-Z a-z 0-9 . _ -' }).regex(ID_RE, { error: 'expected an id of 1-64 characters from A-Z a-z 0-9 . _ -' });

const localSpec = z.strictObject({
  id,
  provider: z.literal('local'),
  dataDir: text('the gateway data directory', 4096).optional(),
});

const pkcs11Spec = z.strictObject({
  id,
  provider: z.literal('pkcs11'),
  module: text('the path of a PKCS#11 module (.so)', 4096).optional(),
  token: text('a token label of 1-128 characters', 128).optional(),
  pin: text('a PIN string').optional(),
  keyLabel: text('a key label of 1-128 characters', 128).optional(),
});

const transitSpec = z
  .strictObject({
    id,
    provider: z.literal('transit'),
    addr: httpUrl('the server address, http(s)://host:port'),
    token: text('a Vault/OpenBao token', 4096).optional(),
    tokenFile: text('the path of a file holding the token', 4096).optional(),
    key: z
      .string({ error: 'expected a transit key name (A-Z a-z 0-9 _ . -)' })
      .regex(/^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,126}[A-Za-z0-9_])?$/, { error: 'expected a transit key name (A-Z a-z 0-9 _ . -)' }),
    mount: z
      .string({ error: 'expected a mount path such as "transit"' })
      .regex(/^[A-Za-z0-9_](?:[A-Za-z0-9_./-]{0,126}[A-Za-z0-9_])?$/, { error: 'expected a mount path such as "transit"' })
      .default('transit'),
    namespace: text('a namespace', 256).optional(),
    timeoutMs: z.number({ error: 'expected milliseconds, 100-300000' }).int().min(100).max(300_000).optional(),
  })
  .refine((s) => (s.token === undefined) !== (s.tokenFile === undefined), { error: 'expected exactly one of token or tokenFile', path: ['token'] });

const awskmsSpec = z
  .strictObject({
    id,
    provider: z.literal('awskms'),
    keyId: z
      .string({ error: 'expected a KMS key id, key ARN or alias/...' })
      .regex(/^(?:[0-9a-fA-F-]{36}|arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(?:key\/[0-9a-fA-F-]{36}|alias\/[A-Za-z0-9/_-]+)|alias\/[A-Za-z0-9/_-]+|mrk-[0-9a-f]{32})$/, {
        error: 'expected a KMS key id, key ARN or alias/...',
      }),
    region: z.string({ error: 'expected an AWS region such as eu-west-1' }).regex(/^[a-z0-9-]{1,64}$/, { error: 'expected an AWS region such as eu-west-1' }).optional(),
    endpoint: httpUrl('an http(s):// KMS endpoint URL').optional(),
    accessKeyId: text('an AWS access key id', 128).optional(),
    secretAccessKey: text('an AWS secret access key', 256).optional(),
    sessionToken: text('an AWS session token', 4096).optional(),
    deletionWindowDays: z.number({ error: 'expected 7-30 days' }).int().min(7, { error: 'expected 7-30 days' }).max(30, { error: 'expected 7-30 days' }).optional(),
    timeoutMs: z.number({ error: 'expected milliseconds, 100-300000' }).int().min(100).max(300_000).optional(),
  })
  .refine((s) => (s.accessKeyId === undefined) === (s.secretAccessKey === undefined), {
    error: 'expected accessKeyId and secretAccessKey together (or neither: the standard AWS credential chain)',
    path: ['secretAccessKey'],
  })
  .refine((s) => s.sessionToken === undefined || s.accessKeyId !== undefined, { error: 'expected sessionToken only with accessKeyId/secretAccessKey', path: ['sessionToken'] });

export const cmkSpecSchema = z.discriminatedUnion('provider', [localSpec, pkcs11Spec, transitSpec, awskmsSpec], {
  error: 'expected provider "local", "pkcs11", "transit" or "awskms"',
});

export type CmkSpec = z.input<typeof cmkSpecSchema>;
export type ParsedCmkSpec = z.output<typeof cmkSpecSchema>;
export const CMK_PROVIDERS: readonly CmkKind[] = ['local', 'pkcs11', 'transit', 'awskms'];

/** Settings a spec may leave to the gateway's configuration. */
export interface CmkDefaults {
  /** Gateway data directory (local CMK key files). */
  dataDir?: string;
  /** Global PKCS#11 module / token / PIN (pkcs11 entries default to them). */
  pkcs11?: { module?: string; token?: string; pin?: string };
}

/** Validates a spec; InvalidArgument naming the CMK and field (never a value). */
export function parseCmkSpec(spec: unknown): ParsedCmkSpec {
  const r = cmkSpecSchema.safeParse(spec);
  if (r.success) return r.data;
  const idOf = spec && typeof spec === 'object' && typeof (spec as { id?: unknown }).id === 'string' && ID_RE.test((spec as { id: string }).id) ? (spec as { id: string }).id : undefined;
  const lines = r.error.issues.map((i) => {
    const field = i.path.length ? i.path.join('.') : '(entry)';
    if (i.code === 'unrecognized_keys') return `${i.keys.map((k) => JSON.stringify(k)).join(', ')}: not a setting of this provider`;
    return `${field}: ${i.message}`;
  });
  throw new S3Error('InvalidArgument', `CMK ${idOf ? `"${idOf}"` : 'entry'}: ${lines.join('; ')}`);
}

/** Builds (does not contact) the provider for a spec; the first call of a method connects. */
export function createCmkProvider(spec: unknown, defaults: CmkDefaults = {}): CmkProvider {
  const s = parseCmkSpec(spec);
  switch (s.provider) {
    case 'local': {
      const dataDir = s.dataDir ?? defaults.dataDir;
      if (!dataDir) throw new S3Error('InvalidArgument', `CMK "${s.id}": dataDir: expected the gateway data directory`);
      return new LocalCmkProvider({ id: s.id, dataDir });
    }
    case 'pkcs11': {
      const module = s.module ?? defaults.pkcs11?.module;
      const token = s.token ?? defaults.pkcs11?.token;
      const pin = s.pin ?? defaults.pkcs11?.pin;
      if (!module) throw new S3Error('InvalidArgument', `CMK "${s.id}": module: expected the path of a PKCS#11 module (LAKECRYPT_PKCS11_MODULE)`);
      if (!token) throw new S3Error('InvalidArgument', `CMK "${s.id}": token: expected a token label (or LAKECRYPT_PKCS11_TOKEN)`);
      if (!pin) throw new S3Error('InvalidArgument', `CMK "${s.id}": pin: expected the token's user PIN (or LAKECRYPT_PKCS11_PIN)`);
      return new Pkcs11CmkProvider({ id: s.id, module, tokenLabel: token, pin, keyLabel: s.keyLabel });
    }
    case 'transit':
      return new TransitCmkProvider({ id: s.id, addr: s.addr, token: s.token, tokenFile: s.tokenFile, key: s.key, mount: s.mount, namespace: s.namespace, timeoutMs: s.timeoutMs });
    case 'awskms':
      return new AwsKmsCmkProvider({
        id: s.id,
        keyId: s.keyId,
        region: s.region,
        endpoint: s.endpoint,
        credentials: s.accessKeyId && s.secretAccessKey ? { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey, sessionToken: s.sessionToken } : undefined,
        deletionWindowDays: s.deletionWindowDays,
        timeoutMs: s.timeoutMs,
      });
  }
}
