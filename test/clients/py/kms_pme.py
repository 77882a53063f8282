"""Parquet modular encryption through lakecrypt (test/clients/kms-pme.test.ts): a worker that runs the KmsClient and
the helpers of docs/clients.md "Column encryption (Parquet modular encryption)" AS PRINTED THERE (the test extracts
the page's code blocks into files and passes their paths), so the page stays true.

One process for the whole test (pyarrow is imported once, so a call made right after a revocation is timed by the
call, not by an interpreter start). Commands: one JSON object per line on stdin; answers: one JSON line on stdout,
{"ok": true, ...} or {"ok": false, "error": "..."}.

Environment: LC_ENDPOINT (the gateway's S3 URL), LC_ACCESS_KEY, LC_SECRET_KEY (the S3 user writing and reading).
"""
import json
import os
import sys
import traceback

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pyarrow.parquet.encryption as pe

ENDPOINT = os.environ["LC_ENDPOINT"]
s3 = pafs.S3FileSystem(access_key=os.environ["LC_ACCESS_KEY"], secret_key=os.environ["LC_SECRET_KEY"],
                       endpoint_override=ENDPOINT.replace("http://", ""), scheme="http", region="us-east-1")

# the page's code, run as it is printed: first the client class, then the helpers (which read KMS_URL and TOKEN)
page = {"pe": pe, "pq": pq, "ds": ds, "s3": s3}
written = {}  # root -> the table written there


def load(blocks, kms_url, token):
    page.update(KMS_URL=kms_url, TOKEN=token)
    for path in blocks:
        with open(path, encoding="utf-8") as f:
            exec(compile(f.read(), path, "exec"), page)  # noqa: S102 - the documented snippet is what is tested
    return {"client": page["LakecryptKmsClient"].__name__}


def table_of(marker, rows):
    return pa.table({
        "name": [f"{marker} name {i}" for i in range(rows)],
        "region": ["eu" if i % 2 else "us" for i in range(rows)],
        "ssn": [f"{marker} ssn {i:09d}" for i in range(rows)],
        "salary": [50_000 + i for i in range(rows)],
    })


def rows_of(t):
    """Rows as plain values, region as a string (partitioning reads it back as a dictionary), sorted by name."""
    t = t.select(["name", "region", "ssn", "salary"]).cast(pa.schema([
        ("name", pa.string()), ("region", pa.string()), ("ssn", pa.string()), ("salary", pa.int64())]))
    return sorted(t.to_pylist(), key=lambda r: r["name"])


def files_under(root):
    return sorted(i.path for i in s3.get_file_info(pafs.FileSelector(root, recursive=True)) if i.type == pafs.FileType.File)


def fresh_properties(kms_url, token):
    """Decryption properties from a new CryptoFactory: pyarrow caches unwrapped keys per factory, so this read asks
    the KMS again (a long-running reader would ask again after DecryptionConfiguration's cache_lifetime)."""
    crypto = pe.CryptoFactory(page["LakecryptKmsClient"])
    kms = pe.KmsConnectionConfig(kms_instance_url=kms_url, key_access_token=token)
    return crypto.file_decryption_properties(kms, pe.DecryptionConfiguration())


def run(cmd):
    op = cmd["op"]
    if op == "load":
        return load(cmd["blocks"], cmd["kms_url"], cmd["token"])
    if op == "write":
        t = table_of(cmd["marker"], cmd.get("rows", 200))
        page["write_encrypted"](t, cmd["root"], cmd["master_key"], plaintext_footer=cmd.get("plaintext_footer", False))
        written[cmd["root"]] = rows_of(t)
        return {"files": files_under(cmd["root"])}
    if op == "forget":
        # what a long-running writer does after `keys rotate` (else it keeps its KEK wrapped under the old version
        # for cache_lifetime): drop the factory's caches, so the next file's KEK is wrapped anew
        page["crypto"].remove_cache_entries_for_all_tokens()
        return {}
    if op == "roundtrip":
        # the page's client on its own: wrap and unwrap one key with a KMS (lakecrypt's, or OpenBao's Transit)
        client = page["LakecryptKmsClient"](pe.KmsConnectionConfig(kms_instance_url=cmd["kms_url"], key_access_token=cmd["token"]))
        key = bytes.fromhex(cmd["key_hex"])
        try:
            wrapped = client.wrap_key(key, cmd["master_key"])
        except RuntimeError as e:
            return {"error": str(e)}
        return {"prefix": wrapped[:9], "same": client.unwrap_key(wrapped, cmd["master_key"]) == key}
    if op == "read":
        got = rows_of(page["read_encrypted"](cmd["root"]))
        return {"rows": len(got), "same": got == written[cmd["root"]]}
    if op == "read_without_kms":
        # a reader with S3 access but no KMS: which columns of one file it can read
        out = {}
        for col in ["name", "region", "ssn", "salary"]:
            try:
                pq.read_table(cmd["file"], filesystem=s3, columns=[col])
                out[col] = "read"
            except Exception as e:  # noqa: BLE001 - the failure is the answer
                out[col] = f"failed: {str(e).splitlines()[0][:200]}"
        return {"columns": out}
    if op == "read_local":
        # a copy taken out of the lake: only the KMS stands between it and its protected columns
        t = pq.read_table(cmd["path"], decryption_properties=fresh_properties(cmd["kms_url"], cmd["token"]))
        return {"rows": t.num_rows, "ssn0": t.column("ssn")[0].as_py()}
    raise ValueError(f"unknown op {op}")


for line in sys.stdin:
    if not line.strip():
        continue
    try:
        answer = {"ok": True, **run(json.loads(line))}
    except Exception as e:  # noqa: BLE001 - every failure goes back to the test
        answer = {"ok": False, "error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:1000],
                  "trace": traceback.format_exc()[-2000:]}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
