/**
 * What every command group of the CLI shares: the global options (--json, --url, --profile), the admin client
 * for the identity they select (src/cli/profiles.ts), output, and quiet throwing sub-commands that suggest the
 * verb meant ("did you mean").
 */
import type { Command } from 'commander';
import { AdminClient, CliError } from './client.ts';
import { parseDuration } from './duration.ts';
import { resolveIdentity } from './profiles.ts';

export type GlobalOpts = { json?: boolean; url?: string; profile?: string };

export interface CommandKit {
  g: () => GlobalOpts;
  /** The admin API client of the selected identity (resolved at the call: `--help` needs no credentials). */
  client: () => AdminClient;
  /** `data` as JSON under --json, else the human text. */
  print: (data: unknown, human: () => string) => void;
  /** A sub-command that throws instead of exiting and prints nothing itself (main() reports every failure once). */
  sub: (parent: Command, name: string, desc: string) => Command;
  P: (...segments: string[]) => string;
}

/** commander's own messages off (main() prints the one line), exceptions instead of exits, suggestions on. */
export function quiet(c: Command): Command {
  return c.exitOverride().configureOutput({ writeErr: () => {}, outputError: () => {} }).showSuggestionAfterError(true);
}

export function commandKit(program: Command, env: NodeJS.ProcessEnv = process.env): CommandKit {
  const g = () => program.opts<GlobalOpts>();
  return {
    g,
    client: () => {
      const id = resolveIdentity({ profile: g().profile, url: g().url }, env);
      return new AdminClient({ url: id.url, accessKey: id.accessKey, secretKey: id.secretKey, region: id.region });
    },
    print: (data, human) => void process.stdout.write(g().json ? JSON.stringify(data, null, 2) + '\n' : human()),
    sub: (parent, name, desc) => quiet(parent.command(name).description(desc)),
    P: (...segments) => AdminClient.path(...segments),
  };
}

export function intArg(name: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v)) throw new CliError(`${name}: expected a non-negative integer, got "${v}"`, 2, 'UsageError');
    return Number(v);
  };
}

export function numArg(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new CliError(`${name}: expected a non-negative number, got "${v}"`, 2, 'UsageError');
    return n;
  };
}

/** A duration option (`1h`, `7d`, `500ms`; a bare number in `bare`) as a number of `to`. */
export function durationArg(name: string, bare: 'ms' | 's', to: 'ms' | 's') {
  return (v: string): number => {
    const ms = parseDuration(v, name, bare);
    return to === 'ms' ? ms : Math.ceil(ms / 1000);
  };
}
