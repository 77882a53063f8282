"""boto3 with Signature Version 2 against lakecrypt (called by test/clients/sigv2.test.ts).

Usage: sigv2_boto3.py ENDPOINT BUCKET OFF_ENDPOINT
  keys in LC_ACCESS_KEY / LC_SECRET_KEY (ENDPOINT) and LC_OFF_ACCESS_KEY / LC_OFF_SECRET_KEY (OFF_ENDPOINT, a
  gateway with sigv2 off). Prints one JSON object with what it saw; an unexpected exception exits non-zero.

generate_presigned_url on a client without a signature_version makes whatever this boto3 makes by default for a
custom endpoint (on botocore 1.43: SigV2 query auth); the explicit signature_version="s3" client signs every
request with SigV2 header auth and presigns with SigV2 query auth.
"""
import hashlib
import http.client
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint, bucket, off_endpoint = sys.argv[1:4]
MiB = 1024 * 1024


def client(url, ak, sk, **cfg):
    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=ak,
        aws_secret_access_key=sk,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, **cfg),
    )


ak, sk = os.environ["LC_ACCESS_KEY"], os.environ["LC_SECRET_KEY"]
default = client(endpoint, ak, sk)
v2 = client(endpoint, ak, sk, signature_version="s3")
off_v2 = client(off_endpoint, os.environ["LC_OFF_ACCESS_KEY"], os.environ["LC_OFF_SECRET_KEY"], signature_version="s3")


def http_call(method, url, body=None):
    """(status, body, S3 error code) of a plain HTTP request: no Content-Type or other header added."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    conn.request(method, u.path + ("?" + u.query if u.query else ""), body=body, headers={} if body is None else {"Content-Length": str(len(body))})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    code = ""
    if b"<Code>" in data:
        code = data.split(b"<Code>", 1)[1].split(b"</Code>", 1)[0].decode()
    return r.status, data, code


def error_code(fn):
    try:
        fn()
    except ClientError as e:
        return e.response["Error"]["Code"]
    return "OK"


out = {}

# --- header auth: every request of this client is SigV2-signed
v2.create_bucket(Bucket=bucket)
small = os.urandom(200_000)
v2.put_object(Bucket=bucket, Key="v2/small ü.bin", Body=small, Metadata={"note": "sigv2-meta"}, ContentType="application/x-lc")
got = v2.get_object(Bucket=bucket, Key="v2/small ü.bin")
assert got["Body"].read() == small, "get_object bytes"
assert got["Metadata"] == {"note": "sigv2-meta"}, got["Metadata"]
assert got["ContentType"] == "application/x-lc", got["ContentType"]
over = v2.get_object(Bucket=bucket, Key="v2/small ü.bin", ResponseContentType="text/plain", ResponseContentDisposition='attachment; filename="x y.bin"')
assert over["ContentType"] == "text/plain", over["ContentType"]
assert over["ContentDisposition"] == 'attachment; filename="x y.bin"', over["ContentDisposition"]
over["Body"].read()
head = v2.head_object(Bucket=bucket, Key="v2/small ü.bin")
assert head["ContentLength"] == len(small)
listed = v2.list_objects_v2(Bucket=bucket, Prefix="v2/")
out["listed"] = [o["Key"] for o in listed.get("Contents", [])]

# multipart: ?uploads, ?partNumber&uploadId, ?uploadId are sub-resources
big = os.urandom(5 * MiB + 12345)
mpu = v2.create_multipart_upload(Bucket=bucket, Key="v2/big.bin")
parts = []
for n, off in enumerate(range(0, len(big), 5 * MiB), start=1):
    r = v2.upload_part(Bucket=bucket, Key="v2/big.bin", UploadId=mpu["UploadId"], PartNumber=n, Body=big[off:off + 5 * MiB])
    parts.append({"PartNumber": n, "ETag": r["ETag"]})
out["listed_parts"] = len(v2.list_parts(Bucket=bucket, Key="v2/big.bin", UploadId=mpu["UploadId"])["Parts"])
v2.complete_multipart_upload(Bucket=bucket, Key="v2/big.bin", UploadId=mpu["UploadId"], MultipartUpload={"Parts": parts})
assert hashlib.sha256(v2.get_object(Bucket=bucket, Key="v2/big.bin")["Body"].read()).digest() == hashlib.sha256(big).digest(), "multipart bytes"

v2.copy_object(Bucket=bucket, Key="v2/copy.bin", CopySource={"Bucket": bucket, "Key": "v2/small ü.bin"})
assert v2.get_object(Bucket=bucket, Key="v2/copy.bin")["Body"].read() == small, "copy"

# --- presigned URLs: the default client's and the explicit "s3" client's
for name, c in (("default", default), ("s3", v2)):
    get_url = c.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "v2/small ü.bin"}, ExpiresIn=600)
    out[f"{name}_form"] = "v2" if "AWSAccessKeyId=" in get_url else "v4" if "X-Amz-Signature=" in get_url else "?"
    status, data, _ = http_call("GET", get_url)
    out[f"{name}_get"] = status
    assert status != 200 or data == small, "presigned GET bytes"
    with urllib.request.urlopen(get_url) as r:  # what a tutorial does with the link
        assert r.read() == small, "urlopen bytes"

    body = f"put through the {name} presigned URL".encode()
    put_url = c.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": f"v2/presigned-{name}.txt"}, ExpiresIn=600)
    status, data, code = http_call("PUT", put_url, body)
    out[f"{name}_put"] = status
    assert v2.get_object(Bucket=bucket, Key=f"v2/presigned-{name}.txt")["Body"].read() == body, "presigned PUT stored"

    # refused: a changed signature, an expired URL, the GET URL used for a PUT, the URL pointed at another key
    sig = urllib.parse.parse_qs(urllib.parse.urlsplit(get_url).query).get("Signature", ["?"])[0]
    if out[f"{name}_form"] == "v2":
        flipped = ("B" if sig[0] == "A" else "A") + sig[1:]
        tampered = get_url.replace("Signature=" + urllib.parse.quote(sig, safe=""), "Signature=" + urllib.parse.quote(flipped, safe=""))
        assert tampered != get_url
        out[f"{name}_tampered"] = http_call("GET", tampered)[::2]
    expired = c.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "v2/small ü.bin"}, ExpiresIn=-60)
    out[f"{name}_expired"] = http_call("GET", expired)[::2]
    out[f"{name}_get_as_put"] = http_call("PUT", get_url, b"overwrite")[::2]
    other = get_url.replace("/v2/small%20%C3%BC.bin", "/v2/copy.bin")
    assert other != get_url
    out[f"{name}_other_key"] = http_call("GET", other)[::2]

assert v2.get_object(Bucket=bucket, Key="v2/small ü.bin")["Body"].read() == small, "untouched by the refused PUT"

# --- DeleteObjects (Content-MD5 or a checksum binds the list) and DeleteObject
deleted = v2.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "v2/copy.bin"}, {"Key": "v2/big.bin"}]})
out["deleted"] = sorted(d["Key"] for d in deleted.get("Deleted", []))
v2.delete_object(Bucket=bucket, Key="v2/presigned-default.txt")
out["after_delete"] = sorted(o["Key"] for o in v2.list_objects_v2(Bucket=bucket, Prefix="v2/").get("Contents", []))

# --- a gateway with sigv2 off refuses both forms
out["off_header"] = error_code(lambda: off_v2.list_buckets())
out["off_query"] = http_call("GET", off_v2.generate_presigned_url("list_objects_v2", Params={"Bucket": "any"}, ExpiresIn=600))[::2]

out["ok"] = True
print(json.dumps(out))
