"""boto3 against lakecrypt, default checksum settings (called by test/clients/boto3.test.ts).

Usage: boto3_client.py ENDPOINT BUCKET WORKDIR MARKER   (keys in LC_ACCESS_KEY / LC_SECRET_KEY)
Prints one JSON object with what it saw; any exception (FlexibleChecksumError included) exits non-zero.
"""
import base64
import hashlib
import json
import os
import sys
import zlib

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

endpoint, bucket, work, marker = sys.argv[1:5]
MiB = 1024 * 1024

# docs:begin boto3
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,  # e.g. "http://127.0.0.1:9100"
    aws_access_key_id=os.environ["LC_ACCESS_KEY"],
    aws_secret_access_key=os.environ["LC_SECRET_KEY"],
    region_name="us-east-1",
    config=Config(s3={"addressing_style": "path"}),  # checksum settings: the defaults (when_supported)
)
# multipart above 8 MiB, 4 threads; downloads become parallel ranged GETs
transfer = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB, max_concurrency=4)
# docs:end


def data(label, size):
    head = f"{marker} boto3 {label}\n".encode()
    return (head + os.urandom(max(0, size - len(head))))[:size]


def crc32_b64(b):
    return base64.b64encode(zlib.crc32(b).to_bytes(4, "big")).decode()


out = {}
s3.create_bucket(Bucket=bucket)

# put/get/head/list/delete
small = data("small", 300_000)
put = s3.put_object(Bucket=bucket, Key="keep/small.bin", Body=small, Metadata={"note": f"{marker}-boto3meta"})
out["put_checksum"] = put.get("ChecksumCRC32")
assert put["ChecksumCRC32"] == crc32_b64(small), "PutObject checksum"
got = s3.get_object(Bucket=bucket, Key="keep/small.bin")  # validates the CRC32 (checksum mode ENABLED)
body = got["Body"].read()
assert body == small, "get_object bytes"
assert got["Metadata"] == {"note": f"{marker}-boto3meta"}, got["Metadata"]
out["get_validated"] = got["ResponseMetadata"]["HTTPHeaders"].get("x-amz-checksum-crc32") == crc32_b64(small)
head = s3.head_object(Bucket=bucket, Key="keep/small.bin", ChecksumMode="ENABLED")
assert head["ChecksumCRC32"] == crc32_b64(small), head
assert head["ContentLength"] == len(small)
rng = s3.get_object(Bucket=bucket, Key="keep/small.bin", Range="bytes=1000-1999")["Body"].read()
assert rng == small[1000:2000], "range"

# upload_file / download_file, multipart and ranged parallel download
big = data("big", 3 * 8 * MiB + 4321)
src = os.path.join(work, "big.bin")
with open(src, "wb") as f:
    f.write(big)
s3.upload_file(src, bucket, "keep/big.bin", Config=transfer)
hb = s3.head_object(Bucket=bucket, Key="keep/big.bin", ChecksumMode="ENABLED")
out["big_etag"] = hb["ETag"]
out["big_checksum"] = {k: v for k, v in hb.items() if k.startswith("Checksum")}
assert hb["ETag"].endswith('-4"'), hb["ETag"]
if hb.get("ChecksumType") == "FULL_OBJECT" and "ChecksumCRC32" in hb:
    assert hb["ChecksumCRC32"] == crc32_b64(big), "full-object CRC32"
dst = os.path.join(work, "big.down")
s3.download_file(bucket, "keep/big.bin", dst, Config=transfer)
with open(dst, "rb") as f:
    assert hashlib.md5(f.read()).hexdigest() == hashlib.md5(big).hexdigest(), "download_file bytes"

# list and delete
for i in range(3):
    s3.put_object(Bucket=bucket, Key=f"tmp/{i}.txt", Body=data(f"tmp{i}", 100 + i))
listed = s3.list_objects_v2(Bucket=bucket, Prefix="tmp/")
out["listed"] = sorted((o["Key"], o["Size"]) for o in listed["Contents"])
assert out["listed"] == [(f"tmp/{i}.txt", 100 + i) for i in range(3)], out["listed"]
s3.delete_object(Bucket=bucket, Key="tmp/0.txt")
s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "tmp/1.txt"}, {"Key": "tmp/2.txt"}]})
assert s3.list_objects_v2(Bucket=bucket, Prefix="tmp/")["KeyCount"] == 0
out["ok"] = True
print(json.dumps(out))
