/**
 * docs/CONFIGURATION.md and config/lakecrypt.yaml are generated from the SETTINGS table
 * (`npx tsx scripts/gen-config-doc.ts`); test/ops checks the committed files are up to date.
 */
import YAML from 'yaml';
import { SETTINGS, type SettingDef } from './config.ts';

const LIST: SettingDef[] = Object.values(SETTINGS);

function fmtDefault(s: SettingDef): string {
  if (s.defaultDoc) return s.defaultDoc;
  if (s.default === undefined) return 'unset';
  if (Array.isArray(s.default)) return s.default.length ? JSON.stringify(s.default) : '`[]`';
  const d: unknown = s.default;
  return `\`${typeof d === 'string' || typeof d === 'number' || typeof d === 'boolean' ? String(d) : JSON.stringify(d)}\``;
}

export function renderConfigDoc(): string {
  const rows = LIST.map((s) => {
    const env = s.secret ? `\`${s.env}\` (or \`${s.env}_FILE\`)` : `\`${s.env}\``;
    const doc = `${s.doc} Valid: ${s.expect}.`.replace(/\|/g, '\\|').replace(/</g, '&lt;').replace(/>/g, '&gt;');
    return `| \`${s.path}\` | ${env} | ${fmtDefault(s)} | ${doc} |`;
  });
  return `# Configuration

<!-- Generated from src/ops/config.ts by \`npx tsx scripts/gen-config-doc.ts\`; do not edit by hand. -->

lakecrypt reads its settings in this order, later ones winning:

1. built-in defaults (the table below);
2. a YAML file: the path in \`LAKECRYPT_CONFIG\`, else \`config/lakecrypt.yaml\` in the working directory if it
   exists (the shipped file lists every setting with its default, so it changes nothing until edited);
3. one environment variable per setting (\`LAKECRYPT_*\`). An empty variable counts as unset.

Nested settings are written as groups in the file (\`s3:\`, \`pkcs11:\`, \`transit:\`, \`kms:\`, \`tls:\`); the table uses
dotted names.
\`users\`, \`cmks\` and \`datasets\` are lists in the file and JSON arrays in the environment; an environment
value replaces the whole list.

**Secrets** (\`secretKey\`, \`s3.secretKey\`, \`pkcs11.pin\`, \`transit.token\`, and the \`users\`/\`cmks\` lists that contain secret keys
and PINs) can also be read from a file named by \`<VAR>_FILE\` (e.g. \`LAKECRYPT_SECRET_KEY_FILE=/run/secrets/lc\`;
one trailing newline is ignored), and so can every other setting (\`LAKECRYPT_ACCESS_KEY_FILE\` from a docker secret);
an empty \`<VAR>\` counts as unset. Secrets never appear in logs or error messages.

**Root credentials**: if neither \`accessKey\` nor \`secretKey\` is set, a pair is generated on first start and
kept in \`<dataDir>/credentials.json\` (mode 0600); the gateway prints the secret at that start only (later starts
print where it is), and the admin CLI run beside it finds it by itself.

**Errors**: a wrong value stops the gateway with exit status 1 and one line on stderr naming the setting, e.g.
\`LAKECRYPT_PORT: expected an integer 1-65535 (or 0 for any free port), got "abc"\`. Unknown keys in the file are
errors too (with a "did you mean" hint). Check a configuration without starting:
\`npx tsx src/ops/config-cli-check.ts\` (prints the effective configuration with secrets as \`***\`).

| Setting | Environment variable | Default | Meaning |
| --- | --- | --- | --- |
${rows.join('\n')}

## Rules across settings

- \`accessKey\`/\`secretKey\`, \`s3.accessKey\`/\`s3.secretKey\` and \`tls.cert\`/\`tls.key\` are set in pairs.
- \`tls.cert\`, \`tls.key\` and \`pkcs11.module\` must be readable files.
- \`cmk: pkcs11\` needs \`pkcs11.module\`, \`pkcs11.token\` and \`pkcs11.pin\`; a \`cmks\` entry of kind \`pkcs11\`
  needs \`pkcs11.module\` and its own or the global token and PIN.
- \`cmk: transit\` needs \`transit.addr\`, \`transit.token\` and \`transit.key\`; \`cmk: awskms\` needs \`kms.keyId\`. A \`cmks\`
  entry is checked by its provider when the gateway starts (one line naming the CMK and the field, never a
  value). What each provider does, and its limits: [CMK-PROVIDERS.md](CMK-PROVIDERS.md).
- \`cmks[].id\` are unique and not \`default\` (the id of the main CMK); \`datasets[].cmk\` names one of them.
- \`datasets[].name\` are unique; \`users[].accessKey\` are unique and differ from the root \`accessKey\`.
- \`metaBucket\` can be neither a dataset nor granted to a user.
- \`port\` and \`adminPort\` differ (unless 0); \`headersTimeoutMs\` ≤ \`requestTimeoutMs\` when the latter is not 0.

## Containers

The image (\`Dockerfile\`) runs as the non-root user \`lakecrypt\` (uid 10001) with \`LAKECRYPT_HOST\` and
\`LAKECRYPT_ADMIN_HOST\` set to \`0.0.0.0\` and \`LAKECRYPT_DATA_DIR=/data\` (a volume), and runs the compiled build
(\`node --max-semi-space-size=4 --min-semi-space-size=4 --interrupt-budget=16384 --expose-gc dist/src/main.js\`, made by \`scripts/build.mjs\` in its build stage); \`lakecrypt\` in it is the admin CLI.
Its HEALTHCHECK (\`src/ops/healthcheck.mjs /readyz\`) GETs \`/readyz\` on \`LAKECRYPT_PORT\`, then on
\`LAKECRYPT_ADMIN_PORT\`: unhealthy while the backend or the CMK cannot be reached.
\`docker-compose.yml\` runs MinIO plus the gateway (\`LAKECRYPT_BACKEND=s3\`); \`--profile softhsm\` adds a
variant whose CMK lives in a SoftHSM2 token (\`LAKECRYPT_CMK=pkcs11\`, token volume, its own meta bucket), the
token being created on first start by \`config/docker/softhsm-entrypoint.sh\`. Set \`MINIO_ROOT_USER\`,
\`MINIO_ROOT_PASSWORD\`, \`LAKECRYPT_ACCESS_KEY\`, \`LAKECRYPT_SECRET_KEY\`, \`LAKECRYPT_PKCS11_PIN\` and \`SOFTHSM_SO_PIN\`
(e.g. in a \`.env\` file); the defaults are \`change-me-…\` placeholders. Both gateways read the mounted
\`config/docker/lakecrypt.yaml\` (over the image's \`config/lakecrypt.yaml\`; its \`datasets\` are registered at start), and
\`docker-compose.secrets.yml\` layers the root user from docker secrets (\`LAKECRYPT_ACCESS_KEY_FILE\`,
\`LAKECRYPT_SECRET_KEY_FILE\`) on top.
`;
}

function comment(text: string, indent: string): string[] {
  const words = text.split(/\s+/);
  const lines: string[] = [];
  let cur = '';
  for (const w of words) {
    if (cur && cur.length + w.length + 1 > 100) {
      lines.push(cur);
      cur = w;
    } else cur = cur ? `${cur} ${w}` : w;
  }
  if (cur) lines.push(cur);
  return lines.map((l) => `${indent}# ${l}`);
}

function yamlValue(v: unknown): string {
  return YAML.stringify(v, { lineWidth: 0 }).trimEnd();
}

export function renderDefaultYaml(): string {
  const out: string[] = [
    '# lakecrypt configuration: every setting with its default.',
    '# Generated from src/ops/config.ts by `npx tsx scripts/gen-config-doc.ts`; edit the copy you deploy, not this one.',
    '# Each setting can be overridden by the environment variable named in its comment (see docs/CONFIGURATION.md).',
    '# Settings shown commented out are unset by default. Keep secrets out of this file: use the env vars',
    '# (or <VAR>_FILE) instead.',
  ];
  let group: string | null = null;
  for (const s of LIST) {
    const parts = s.path.split('.');
    const g = parts.length > 1 ? parts[0] : null;
    const name = parts[parts.length - 1];
    if (g !== group) {
      if (g) out.push('', `${g}:`);
      group = g;
    }
    const indent = g ? '  ' : '';
    out.push('');
    out.push(...comment(`${s.doc} Valid: ${s.expect}.`, indent));
    out.push(`${indent}# env: ${s.env}${s.secret ? ` (or ${s.env}_FILE)` : ''}`);
    const isList = Array.isArray(s.default);
    if (s.default !== undefined && !(isList && s.example !== undefined)) {
      out.push(`${indent}${name}: ${yamlValue(s.default)}`);
    } else if (isList) {
      out.push(`${indent}${name}: []`);
      out.push(`${indent}# example:`);
      const ex = YAML.stringify({ [name]: s.example }, { lineWidth: 0 }).trimEnd().split('\n');
      out.push(...ex.map((l) => `${indent}# ${l}`));
    } else {
      const ex = s.example !== undefined ? yamlValue(s.example) : '';
      out.push(`${indent}# ${name}: ${ex}`.trimEnd());
    }
  }
  return `${out.join('\n')}\n`;
}
