/**
 * `lakecrypt kms token create|list|revoke`: tokens of the KMS endpoint (admin API /admin/kms). `create` prints the
 * token alone on stdout (`TOKEN=$(lakecrypt kms token create --user analyst)`), what it is for on stderr; the
 * token is shown this once and never stored. Registered on the program by `registerKmsCommands`; the global
 * `--json` and `--url` options and the credentials work as for every other command.
 */
import type { Command } from 'commander';
import type * as Api from './api-types.ts';
import { commandKit } from './common.ts';
import { table } from './format.ts';

/** Add the `kms` command group to the `lakecrypt` program. */
export function registerKmsCommands(program: Command, env: NodeJS.ProcessEnv = process.env): void {
  // The identity (profile, environment or embedded default), output and sub-commands every group shares.
  const { g, print, client, P, sub } = commandKit(program, env);

  const kms = sub(program, 'kms', 'the KMS endpoint (Parquet modular encryption): its tokens');
  const token = sub(kms, 'token', 'tokens clients send as X-Vault-Token');
  sub(token, 'create', 'issue a token for an S3 user (it reaches the keys of the datasets that user may read)')
    .requiredOption('--user <accessKey>', 'the S3 user the token acts as')
    .option('--ttl <duration>', 'lifetime: seconds, or a number with s, m, h or d (default 1h, at most 30d)')
    .action(async (o: { user: string; ttl?: string }) => {
      const r = await client().post<Api.KmsTokenCreated>(P('admin', 'kms', 'tokens'), { user: o.user, ...(o.ttl !== undefined ? { ttl: o.ttl } : {}) });
      if (!g().json) process.stderr.write(`KMS token for ${r.user}, expires ${r.expiresAt} (accessor ${r.accessor}); it is not shown again\n`);
      print(r, () => `${r.token}\n`);
    });
  sub(token, 'list', 'tokens issued and not revoked (expired ones too), by accessor: never the tokens').action(async () => {
    const r = await client().get<Api.KmsTokenList>(P('admin', 'kms', 'tokens'));
    print(r, () =>
      r.tokens.length
        ? table(['ACCESSOR', 'USER', 'EXPIRES', 'CREATED-BY', 'STATE'], r.tokens.map((t) => [t.accessor, t.user, t.expiresAt, t.createdBy, t.expired ? 'expired' : 'live']))
        : 'no KMS tokens\n',
    );
  });
  sub(token, 'revoke', 'end a token on every gateway (within the revocation bound)')
    .argument('<token-or-accessor>', 'the token, or its accessor from `kms token list`')
    .action(async (which: string) => {
      const body = /^[0-9a-f]{64}$/.test(which) ? { accessor: which } : { token: which };
      const r = await client().post<Api.KmsTokenRevoked>(P('admin', 'kms', 'tokens', 'revoke'), body);
      print(r, () => `revoked the KMS token of ${r.revoked.user} (accessor ${r.revoked.accessor})\n`);
    });
}
