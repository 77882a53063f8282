/** Types of scripts/build.mjs (the compiled build), for the TypeScript that launches it (tools/gateway.ts). */
export declare const ROOT: string;
export declare const DIST: string;
export declare const ENTRIES: Record<string, string>;
/** dist/src/main.js: the gateway. */
export declare const GATEWAY_JS: string;
/** dist/src/cli/main.js: the CLI. */
export declare const CLI_JS: string;
/** Why dist/ must be (re)built, or null when it is up to date. */
export declare function staleReason(): string | null;
/** Build now. */
export declare function build(): Promise<void>;
/** Build when stale (one builder at a time); whether this process built. */
export declare function ensureBuilt(): Promise<boolean>;
