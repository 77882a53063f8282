"""DuckDB writes through lakecrypt (called by test/clients/lake-engines.test.ts).

    lake_duckdb.py copy BUCKET MARKER

Builds a table in DuckDB (some rows carry MARKER in a text column, for the backend scan), writes it with
`COPY ... TO 's3://BUCKET/single.parquet'` (one file, uploaded in several multipart parts) and with
`COPY ... TO 's3://BUCKET/parted' (FORMAT parquet, PARTITION_BY (cat))`, reads both back through the gateway and
compares them with the source rows: the same count and nothing left over by EXCEPT ALL either way, i.e. the
same multiset of rows. Prints one JSON line.
"""
import glob
import json
import os
import sys

from lake_common import ACCESS_KEY, HOSTPORT, SECRET_KEY, list_keys, make_bucket, marker_objects

ROWS = 300_000


def connect():
    import duckdb
    import duckdb_extension_httpfs

    # as in analytics.py (the documented DuckDB setup): the extension file from the pip package, no download
    ext = glob.glob(os.path.join(os.path.dirname(duckdb_extension_httpfs.__file__), "extensions", "*", "httpfs.duckdb_extension"))[0]
    con = duckdb.connect(config={"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"})
    con.execute(f"LOAD '{ext}'")
    con.execute(f"""CREATE SECRET lakecrypt (TYPE s3, KEY_ID '{ACCESS_KEY}', SECRET '{SECRET_KEY}', REGION 'us-east-1',
                    ENDPOINT '{HOSTPORT}', URL_STYLE 'path', USE_SSL false)""")
    return con


def same_rows(con, a, b):
    na = con.execute(f"SELECT count(*) FROM {a}").fetchone()[0]
    nb = con.execute(f"SELECT count(*) FROM {b}").fetchone()[0]
    ab = con.execute(f"SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b})").fetchone()[0]
    ba = con.execute(f"SELECT count(*) FROM (SELECT * FROM {b} EXCEPT ALL SELECT * FROM {a})").fetchone()[0]
    return {"equal": na == nb and ab == 0 and ba == 0, "rows": nb, "source_rows": na, "missing": ab, "extra": ba}


def copy(bucket, marker):
    s3 = make_bucket(bucket)
    con = connect()
    # md5 strings hardly compress: the single file is over 10 MiB, so it goes up in more than one part
    con.execute(f"""CREATE TABLE src AS SELECT
        i::BIGINT AS id,
        'c' || (i % 5)::VARCHAR AS cat,
        (i * 0.25)::DOUBLE AS value,
        md5(i::VARCHAR) || md5((i + 1)::VARCHAR) AS note,
        CASE WHEN i % 1000 = 7 THEN '{marker}-' || i::VARCHAR ELSE NULL END AS tag,
        DATE '2024-01-01' + (i % 366)::INTEGER AS day
        FROM range({ROWS}) t(i)""")
    # docs:begin duckdb-copy
    # optional: part size = s3_uploader_max_filesize / s3_uploader_max_parts_per_file (10000); at its minimum,
    # 50GB, parts are ~5 MiB instead of ~80 MiB
    con.execute("SET s3_uploader_max_filesize = '50GB'")
    con.execute(f"COPY src TO 's3://{bucket}/single.parquet'")
    con.execute(f"COPY src TO 's3://{bucket}/parted' (FORMAT parquet, PARTITION_BY (cat))")
    # docs:end

    single = f"read_parquet('s3://{bucket}/single.parquet')"
    # the partition column comes back from the directory names (cat=c0/...): as text, as it went in
    parted = (f"(SELECT id, cat, value, note, tag, day FROM read_parquet('s3://{bucket}/parted/**/*.parquet', "
              f"hive_partitioning = true, hive_types = {{'cat': VARCHAR}}))")
    print(json.dumps({
        "single": same_rows(con, "src", single),
        "parted": same_rows(con, "src", parted),
        "marker_rows": con.execute(f"SELECT count(*) FROM {single} WHERE tag LIKE '{marker}-%'").fetchone()[0],
        "keys": sorted(o["Key"] for o in list_keys(s3, bucket)),
        "marker_objects": marker_objects(s3, bucket, marker),
    }))


if __name__ == "__main__":
    if sys.argv[1] == "copy":
        copy(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
