/**
 * ETags as S3 writes them: in double quotes on the wire (headers and XML), bare in our own records. One rule for
 * every place that quotes or unquotes: a weak prefix (W/) and any surrounding quotes are dropped, `*` (the
 * any-ETag of conditions) stays as it is.
 */
export const unquoteEtag = (etag: string | undefined): string => (etag ?? '').replace(/^W\//, '').replace(/^"+|"+$/g, '');

export const quoteEtag = (etag: string): string => (etag === '*' ? '*' : `"${unquoteEtag(etag)}"`);
