"""What the lake-engine scripts (lake_*.py) share: the gateway's coordinates from the environment, a boto3
client for setting up and inspecting buckets, and the plaintext check behind the tests' backend scans.

Endpoint and keys in LC_ENDPOINT (http://127.0.0.1:PORT), LC_ACCESS_KEY, LC_SECRET_KEY.
"""
import os

ENDPOINT = os.environ["LC_ENDPOINT"]
HOSTPORT = ENDPOINT.replace("http://", "")
ACCESS_KEY = os.environ["LC_ACCESS_KEY"]
SECRET_KEY = os.environ["LC_SECRET_KEY"]


def s3_client(endpoint=ENDPOINT):
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                        region_name="us-east-1", config=Config(s3={"addressing_style": "path"}))


def make_bucket(bucket):
    s3 = s3_client()
    try:
        s3.create_bucket(Bucket=bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    return s3


def list_keys(s3, bucket):
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        out += page.get("Contents", [])
    return out


def marker_objects(s3, bucket, marker):
    """Keys whose plaintext (read back through the gateway) holds the marker: the backend scan that follows in
    the test means something only if the engine really wrote the marker's bytes as they are."""
    return [o["Key"] for o in list_keys(s3, bucket)
            if marker.encode() in s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()]
