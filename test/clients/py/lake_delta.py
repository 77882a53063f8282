"""delta-rs (the `deltalake` package) through lakecrypt (called by test/clients/lake-engines.test.ts and
test/clients/delta-concurrent.test.ts).

    lake_delta.py basic BUCKET MARKER            create, append, overwrite, time travel; every read compared
    lake_delta.py create BUCKET TABLE            version 0 of TABLE: its schema (writer, seq), no rows
    lake_delta.py stale BUCKET TABLE             a commit race decided one way: see stale()
    lake_delta.py append BUCKET TABLE WRITER N   N appends of one row (WRITER, seq) each, each its own commit
    lake_delta.py check BUCKET TABLE             the rows and versions of TABLE as they are now

`stale` also needs LC_ENDPOINT2, a second gateway on the same backend. Prints one JSON line.
"""
import json
import sys
import time

from lake_common import ACCESS_KEY, ENDPOINT, SECRET_KEY, list_keys, make_bucket, marker_objects, s3_client


def delta_options(endpoint=ENDPOINT):
    # docs:begin delta
    storage_options = {
        "AWS_ENDPOINT_URL": endpoint,  # "http://127.0.0.1:9100"
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
        "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "false",  # path style (the default, said out loud)
        # commits are PUTs with If-None-Match: * (lakecrypt makes them atomic with the backend's commit), so
        # writers on any number of gateways need no locking provider and no AWS_S3_ALLOW_UNSAFE_RENAME
        "conditional_put": "etag",
    }
    # docs:end
    return storage_options


storage_options = delta_options()


def rows(table):
    """The rows of an Arrow table as sorted tuples (the order of files is not the order of writes)."""
    cols = table.column_names
    d = table.to_pydict()
    return sorted(tuple(d[c][i] for c in cols) for i in range(table.num_rows))


def batch(ids, label, marker):
    import pyarrow as pa

    return pa.table({
        "id": pa.array(ids, type=pa.int64()),
        "label": pa.array([label] * len(ids), type=pa.string()),
        "tag": pa.array([f"{marker}-{label}-{i}" for i in ids], type=pa.string()),
        "amount": pa.array([i * 1.5 for i in ids], type=pa.float64()),
    })


def basic(bucket, marker):
    from deltalake import DeltaTable, write_deltalake

    s3 = make_bucket(bucket)
    uri = f"s3://{bucket}/events"
    first, more, replaced = batch(range(0, 500), "first", marker), batch(range(500, 800), "more", marker), batch(range(1000, 1200), "replaced", marker)
    write_deltalake(uri, first, storage_options=storage_options)  # version 0 (mode "error": a new table)
    write_deltalake(uri, more, mode="append", storage_options=storage_options)  # version 1
    after_append = rows(DeltaTable(uri, storage_options=storage_options).to_pyarrow_table())
    write_deltalake(uri, replaced, mode="overwrite", storage_options=storage_options)  # version 2
    now = DeltaTable(uri, storage_options=storage_options)
    v0 = DeltaTable(uri, version=0, storage_options=storage_options)
    v1 = DeltaTable(uri, storage_options=storage_options)
    v1.load_as_version(1)
    print(json.dumps({
        "version": now.version(),
        "history": sorted(h["version"] for h in now.history()),
        "append": {"equal": after_append == sorted(rows(first) + rows(more)), "rows": len(after_append)},
        "overwrite": {"equal": rows(now.to_pyarrow_table()) == rows(replaced), "rows": now.to_pyarrow_table().num_rows},
        "time_travel_v0": {"equal": rows(v0.to_pyarrow_table()) == rows(first), "version": v0.version()},
        "time_travel_v1": {"equal": rows(v1.to_pyarrow_table()) == after_append, "version": v1.version()},
        "files": len(now.file_uris()),
        "keys": sorted(o["Key"] for o in list_keys(s3, bucket)),
        "marker_objects": marker_objects(s3, bucket, marker),
    }))


def one_row(writer, seq):
    import pyarrow as pa

    return pa.table({"writer": pa.array([writer], type=pa.string()), "seq": pa.array([seq], type=pa.int64())})


def create(bucket, table):
    import pyarrow as pa
    from deltalake import write_deltalake

    make_bucket(bucket)
    empty = pa.table({"writer": pa.array([], type=pa.string()), "seq": pa.array([], type=pa.int64())})
    write_deltalake(f"s3://{bucket}/{table}", empty, storage_options=storage_options)
    print(json.dumps({"created": table}))


def stale(bucket, table):
    """Two writers that both read version v, one on each gateway: the first commits v+1 through gateway 1; the
    second, through gateway 2, still holds v and appends: delta-rs finds v+1 taken and commits at v+2. Then the
    very request a writer that missed v+1 would make, the conditional PUT of v+1's log entry through gateway 2,
    must be refused, and v+1 keep its content."""
    import os

    from botocore.exceptions import ClientError
    from deltalake import DeltaTable, write_deltalake

    uri = f"s3://{bucket}/{table}"
    late = DeltaTable(uri, storage_options=delta_options(os.environ["LC_ENDPOINT2"]))
    read_version = late.version()
    write_deltalake(uri, one_row("early", 0), mode="append", storage_options=storage_options)
    write_deltalake(late, one_row("late", 0), mode="append")
    late.update_incremental()

    entry = f"{table}/_delta_log/{read_version + 1:020d}.json"
    s3_1, s3_2 = s3_client(), s3_client(os.environ["LC_ENDPOINT2"])
    taken = s3_1.get_object(Bucket=bucket, Key=entry)["Body"].read()
    try:
        s3_2.put_object(Bucket=bucket, Key=entry, Body=b'{"commitInfo":{}}\n', IfNoneMatch="*")
        refused = None
    except ClientError as e:
        refused = [e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]]
    kept = s3_1.get_object(Bucket=bucket, Key=entry)["Body"].read() == taken
    print(json.dumps({"read_version": read_version, "version": late.version(), "refused": refused, "kept": kept}))


def append(bucket, table, writer, n):
    from deltalake import CommitProperties, write_deltalake
    from deltalake.exceptions import CommitFailedError

    uri = f"s3://{bucket}/{table}"
    # Appends never conflict with appends: delta-rs retries a lost race at the next version by itself. Writers
    # can still take turns past its retry budget, so it gets a large one; a commit that fails anyway is redone
    # whole (its data file is then an orphan, in no version) and counted.
    props = CommitProperties(max_commit_retries=1000)
    redone = 0
    for seq in range(n):
        while True:
            try:
                write_deltalake(uri, one_row(writer, seq), mode="append", storage_options=storage_options, commit_properties=props)
                break
            except CommitFailedError:
                redone += 1
                time.sleep(0.05)
    print(json.dumps({"writer": writer, "commits": n, "redone": redone}))


def check(bucket, table):
    from deltalake import DeltaTable

    dt = DeltaTable(f"s3://{bucket}/{table}", storage_options=storage_options)
    d = dt.to_pyarrow_table().to_pydict()
    s3 = make_bucket(bucket)
    print(json.dumps({
        "version": dt.version(),
        "history": sorted(h["version"] for h in dt.history()),
        "rows": sorted([w, s] for w, s in zip(d["writer"], d["seq"])),
        "commit_files": sorted(o["Key"].rsplit("/", 1)[1] for o in list_keys(s3, bucket)
                               if o["Key"].startswith(f"{table}/_delta_log/") and o["Key"].endswith(".json")),
    }))


if __name__ == "__main__":
    cmd, bucket = sys.argv[1], sys.argv[2]
    if cmd == "basic":
        basic(bucket, sys.argv[3])
    elif cmd == "create":
        create(bucket, sys.argv[3])
    elif cmd == "stale":
        stale(bucket, sys.argv[3])
    elif cmd == "append":
        append(bucket, sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif cmd == "check":
        check(bucket, sys.argv[3])
    else:
        sys.exit(f"unknown command {cmd}")
