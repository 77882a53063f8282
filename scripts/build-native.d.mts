/** Types of scripts/build-native.mjs (the native data plane's build), for the TypeScript that loads the addon. */
export declare const SOURCE: string;
/** The pump's C sources compiled together: native/dataplane.c and native/aws-chunked.c (they share native/pump.h). */
export declare const PUMP_SOURCES: string[];
/** native/heap.cc (V8's memory-pressure call, compiled as C++ into the same addon). */
export declare const HEAP_SOURCE: string;
/** native/build/dataplane.node */
export declare const ADDON: string;
/** node's include directory with node_api.h and openssl/evp.h, or null. */
export declare function nodeIncludeDir(): string | null;
/** Why the addon must be (re)built, or null when it is up to date. */
export declare function staleReason(): string | null;
/** Build when stale (or always with force); the addon's path. Throws saying what is missing when it cannot. */
export declare function buildNative(o?: { force?: boolean; quiet?: boolean }): string;
