"""pyiceberg with a SQL catalog (sqlite) through lakecrypt (called by test/clients/lake-engines.test.ts).

    lake_iceberg.py run BUCKET CATALOG_DIR FILEIO MARKER

FILEIO is `pyarrow` (pyiceberg.io.pyarrow.PyArrowFileIO) or `fsspec` (pyiceberg.io.fsspec.FsspecFileIO, on s3fs).
Creates a namespace and a table whose warehouse is s3://BUCKET/wh, appends twice, deletes some rows (a
copy-on-write rewrite of a data file), then reads back through a second catalog object, so that metadata,
manifests and data are all read again from the gateway: the current snapshot, each earlier one and a filtered
projection, every read compared with the rows written. Prints one JSON line.
"""
import json
import sys

from lake_common import ACCESS_KEY, ENDPOINT, SECRET_KEY, list_keys, make_bucket, marker_objects

FILEIO = {"pyarrow": "pyiceberg.io.pyarrow.PyArrowFileIO", "fsspec": "pyiceberg.io.fsspec.FsspecFileIO"}


def catalog(bucket, catalog_dir, file_io):
    from pyiceberg.catalog.sql import SqlCatalog

    # docs:begin pyiceberg
    cat = SqlCatalog(
        "lake",
        uri=f"sqlite:///{catalog_dir}/catalog.db",  # or any SQLAlchemy URL (PostgreSQL, MySQL ...)
        warehouse=f"s3://{bucket}/wh",
        **{
            "s3.endpoint": ENDPOINT,  # "http://127.0.0.1:9100"
            "s3.access-key-id": ACCESS_KEY,
            "s3.secret-access-key": SECRET_KEY,
            "s3.region": "us-east-1",
            "s3.force-virtual-addressing": "false",  # path style (the default, said out loud)
            # either FileIO: "pyiceberg.io.pyarrow.PyArrowFileIO" or "pyiceberg.io.fsspec.FsspecFileIO" (s3fs)
            "py-io-impl": file_io,
        },
    )
    # docs:end
    return cat


def rows(table):
    cols = table.column_names
    d = table.to_pydict()
    return sorted(tuple(d[c][i] for c in cols) for i in range(table.num_rows))


def batch(ids, label, marker):
    import pyarrow as pa

    return pa.table({
        "id": pa.array(ids, type=pa.int64()),
        "label": pa.array([label] * len(ids), type=pa.string()),
        "tag": pa.array([f"{marker}-{label}-{i}" for i in ids], type=pa.string()),
        "amount": pa.array([i * 0.5 for i in ids], type=pa.float64()),
    })


def run(bucket, catalog_dir, fileio, marker):
    from pyiceberg.expressions import LessThan

    s3 = make_bucket(bucket)
    impl = FILEIO[fileio]
    cat = catalog(bucket, catalog_dir, impl)
    first, second = batch(range(0, 2000), "first", marker), batch(range(2000, 2500), "second", marker)
    cat.create_namespace("sales")
    tbl = cat.create_table("sales.orders", schema=first.schema)
    tbl.append(first)
    tbl.append(second)
    tbl.delete(LessThan("id", 100))
    want = [r for r in rows(first) + rows(second) if r[0] >= 100]

    again = catalog(bucket, catalog_dir, impl).load_table("sales.orders")
    snaps = [s.snapshot_id for s in again.snapshots()]
    at = [rows(again.scan(snapshot_id=s).to_arrow()) for s in snaps]
    now = rows(again.scan().to_arrow())
    filtered = rows(again.scan(row_filter="id >= 2400", selected_fields=("id", "label")).to_arrow())
    keys = [o["Key"] for o in list_keys(s3, bucket)]
    print(json.dumps({
        "io": f"{type(again.io).__module__}.{type(again.io).__name__}",
        "namespaces": [list(n) for n in cat.list_namespaces()],
        "tables": [list(t) for t in cat.list_tables("sales")],
        "location": again.location(),
        "snapshots": len(snaps),
        "current": {"equal": now == want, "rows": len(now)},
        "snapshot_1": {"equal": at[0] == rows(first), "rows": len(at[0])},
        "snapshot_2": {"equal": at[1] == sorted(rows(first) + rows(second)), "rows": len(at[1])},
        "filtered": {"equal": filtered == [(i, "second") for i in range(2400, 2500)], "rows": len(filtered)},
        "metadata_files": len([k for k in keys if k.endswith(".metadata.json")]),
        "data_files": len([k for k in keys if k.endswith(".parquet")]),
        "marker_objects": marker_objects(s3, bucket, marker),
    }))


if __name__ == "__main__":
    if sys.argv[1] == "run":
        run(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
