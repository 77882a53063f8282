"""Analytics engines against lakecrypt (called by test/clients/analytics.test.ts).

    analytics.py gen DIR MARKER                  Hive-partitioned Parquet dataset (year=/month=), 12 files
    analytics.py upload DIR BUCKET               boto3 upload of DIR/ds/** to s3://BUCKET/ds/
    analytics.py duckdb DIR BUCKET MARKER        DuckDB httpfs queries, each compared with the local files
    analytics.py duckdb-proj DIR BUCKET          one projected aggregate (the test checks its access log)
    analytics.py pyarrow DIR BUCKET              pyarrow.dataset, partition filter + projection
    analytics.py polars DIR BUCKET               Polars scan (pushdown) + write back + read back

Endpoint and keys in LC_ENDPOINT (http://127.0.0.1:PORT), LC_ACCESS_KEY, LC_SECRET_KEY.
Prints one JSON line; every compared result carries "equal".
"""
import glob
import json
import os
import sys

cmd = sys.argv[1]
DIR = sys.argv[2]
ENDPOINT = os.environ.get("LC_ENDPOINT", "")
HOSTPORT = ENDPOINT.replace("http://", "")
ACCESS_KEY = os.environ.get("LC_ACCESS_KEY", "")
SECRET_KEY = os.environ.get("LC_SECRET_KEY", "")
YEARS = [2023, 2024]
MONTHS = [1, 2, 3, 4, 5, 6]
ROWS_PER_FILE = 200_000  # 12 files: 2.4 million rows


def emit(obj):
    print(json.dumps(obj, default=str))


def gen(marker):
    from array import array

    import pyarrow as pa
    import pyarrow.parquet as pq

    cats = [f"c{i}" for i in range(10)]
    total = 0
    for fi, (y, m) in enumerate((y, m) for y in YEARS for m in MONTHS):
        n = ROWS_PER_FILE
        rnd = array("H", os.urandom(2 * n))
        tags = [f"t{i % 97}" for i in range(n)]
        tags[12345] = f"{marker}-row-{y}-{m}"  # one unique marker value per file
        hexes = os.urandom(8 * n).hex()
        table = pa.table(
            {
                "id": pa.array(range(fi * n, (fi + 1) * n), type=pa.int64()),
                "value": pa.array([r % 1000 for r in rnd], type=pa.int32()),
                "category": pa.array([cats[r % 10] for r in rnd], type=pa.string()).dictionary_encode(),
                "tag": pa.array(tags, type=pa.string()),
                # a wide, poorly compressible column, so that projecting it away saves most of the bytes
                "note": pa.array([hexes[i : i + 16] for i in range(0, 16 * n, 16)], type=pa.string()),
            }
        )
        d = os.path.join(DIR, "ds", f"year={y}", f"month={m}")
        os.makedirs(d, exist_ok=True)
        pq.write_table(table, os.path.join(d, "part-0.parquet"), row_group_size=100_000)
        total += n
    files = sorted(glob.glob(os.path.join(DIR, "ds", "*", "*", "*.parquet")))
    emit({"rows": total, "files": len(files), "bytes": sum(os.path.getsize(f) for f in files)})


def upload(bucket):
    import boto3
    from botocore.config import Config

    s3 = boto3.client("s3", endpoint_url=ENDPOINT, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                      region_name="us-east-1", config=Config(s3={"addressing_style": "path"}))
    s3.create_bucket(Bucket=bucket)
    n = 0
    for f in sorted(glob.glob(os.path.join(DIR, "ds", "*", "*", "*.parquet"))):
        key = os.path.relpath(f, DIR).replace(os.sep, "/")
        s3.upload_file(f, bucket, key)
        n += 1
    emit({"uploaded": n})


def duck():
    import duckdb
    import duckdb_extension_httpfs

    # docs:begin duckdb
    # httpfs without network: the pip package duckdb-extension-httpfs ships the (signed) extension file
    ext = glob.glob(os.path.join(os.path.dirname(duckdb_extension_httpfs.__file__), "extensions", "*", "httpfs.duckdb_extension"))[0]
    con = duckdb.connect(config={"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"})
    con.execute(f"LOAD '{ext}'")
    con.execute(f"""CREATE SECRET lakecrypt (TYPE s3, KEY_ID '{ACCESS_KEY}', SECRET '{SECRET_KEY}', REGION 'us-east-1',
                    ENDPOINT '{HOSTPORT}', URL_STYLE 'path', USE_SSL false)""")  # ENDPOINT: '127.0.0.1:9100'
    # docs:end
    return con


def q_duckdb(bucket, marker):
    con = duck()
    remote = f"read_parquet('s3://{bucket}/ds/*/*/*.parquet', hive_partitioning = true)"
    local = f"read_parquet('{DIR}/ds/*/*/*.parquet', hive_partitioning = true)"
    queries = {
        "agg": "SELECT year, month, count(*) AS n, sum(value) AS s, min(id) AS lo, max(id) AS hi FROM {t} "
               "WHERE category = 'c3' GROUP BY ALL ORDER BY ALL",
        "filter": "SELECT count(*), sum(value) FROM {t} WHERE year = 2024 AND month IN (2, 5) AND value < 100",
        "marker": f"SELECT id, year, month, tag FROM {{t}} WHERE tag LIKE '{marker}%' ORDER BY id",
        "total": "SELECT count(*), count(DISTINCT category), sum(value) FROM {t}",
    }
    out = {}
    for name, q in queries.items():
        r = con.execute(q.format(t=remote)).fetchall()
        l = con.execute(q.format(t=local)).fetchall()
        out[name] = {"equal": r == l, "rows": len(r), "sample": r[:2]}
    emit(out)


def q_duckdb_proj(bucket):
    con = duck()
    q = "SELECT sum(value), count(*) FROM read_parquet('{p}', hive_partitioning = true) WHERE year = 2024"
    r = con.execute(q.format(p=f"s3://{bucket}/ds/*/*/*.parquet")).fetchall()
    l = con.execute(q.format(p=f"{DIR}/ds/*/*/*.parquet")).fetchall()
    emit({"proj": {"equal": r == l, "result": r}})


def q_pyarrow(bucket):
    import pyarrow.dataset as ds
    from pyarrow import fs

    # docs:begin pyarrow
    s3fs = fs.S3FileSystem(access_key=ACCESS_KEY, secret_key=SECRET_KEY, endpoint_override=HOSTPORT,  # '127.0.0.1:9100'
                           scheme="http", region="us-east-1")
    remote = ds.dataset(f"{bucket}/ds", filesystem=s3fs, format="parquet", partitioning="hive")
    # docs:end
    local = ds.dataset(os.path.join(DIR, "ds"), format="parquet", partitioning="hive")
    flt = (ds.field("year") == 2023) & (ds.field("month") == 4) & (ds.field("value") >= 500)
    cols = ["id", "value", "category"]
    r = remote.to_table(columns=cols, filter=flt).sort_by("id")
    l = local.to_table(columns=cols, filter=flt).sort_by("id")
    r2 = remote.to_table(columns=["tag"], filter=ds.field("month") == 6).num_rows
    l2 = local.to_table(columns=["tag"], filter=ds.field("month") == 6).num_rows
    emit({"filter_projection": {"equal": r.equals(l), "rows": r.num_rows, "columns": r.column_names},
          "month6": {"equal": r2 == l2, "rows": r2}})


def q_polars(bucket):
    import polars as pl

    # docs:begin polars
    storage_options = {
        "aws_endpoint_url": ENDPOINT,  # "http://127.0.0.1:9100"
        "aws_allow_http": "true",
        "aws_region": "us-east-1",
        "aws_access_key_id": ACCESS_KEY,
        "aws_secret_access_key": SECRET_KEY,
        "aws_virtual_hosted_style_request": "false",
    }
    lf = pl.scan_parquet(f"s3://{bucket}/ds/**/*.parquet", hive_partitioning=True, storage_options=storage_options)
    # docs:end
    local = pl.scan_parquet(os.path.join(DIR, "ds", "**", "*.parquet"), hive_partitioning=True)

    def query(f):
        return (f.filter((pl.col("year") == 2024) & (pl.col("value") > 900))
                 .select(["id", "value", "month"])
                 .sort("id")
                 .collect())

    r, l = query(lf), query(local)
    agg = lambda f: f.group_by("category").agg(pl.len().alias("n"), pl.col("value").sum().alias("s")).sort("category").collect()
    ra, la = agg(lf), agg(local)
    # write a result back through lakecrypt and read it again
    out_uri = f"s3://{bucket}/out/polars-result.parquet"
    r.write_parquet(out_uri, storage_options=storage_options)
    back = pl.read_parquet(out_uri, storage_options=storage_options)
    emit({"pushdown": {"equal": r.equals(l), "rows": r.height},
          "agg": {"equal": ra.equals(la), "rows": ra.height},
          "roundtrip": {"equal": back.equals(r), "rows": back.height}})


if cmd == "gen":
    gen(sys.argv[3])
elif cmd == "upload":
    upload(sys.argv[3])
elif cmd == "duckdb":
    q_duckdb(sys.argv[3], sys.argv[4])
elif cmd == "duckdb-proj":
    q_duckdb_proj(sys.argv[3])
elif cmd == "pyarrow":
    q_pyarrow(sys.argv[3])
elif cmd == "polars":
    q_polars(sys.argv[3])
else:
    sys.exit(f"unknown command {cmd}")
