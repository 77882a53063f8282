"""Apache Spark (pyspark, s3a) through lakecrypt (called by test/clients/lake-engines.test.ts, opt-in with
LAKECRYPT_TEST_SPARK=1: pyspark is ~460 MB and the AWS SDK bundle hadoop-aws needs ~650 MB).

    lake_spark.py run BUCKET MARKER

Writes a DataFrame (some rows carry MARKER) as Parquet partitioned by a column, with Spark's default commit
(task and job commits are S3 copies and deletes), and as one CSV file; reads both back through the gateway and
compares them with the source: the same count and nothing left over by exceptAll either way.

The jars, comma-separated in LAKECRYPT_SPARK_JARS (the test names them: hadoop-aws, as the Hadoop inside
pyspark, the AWS SDK bundle and the analytics accelerator hadoop-aws 3.5 loads; scripts/test-deps.sh fetches them).
Prints one JSON line.
"""
import json
import os
import sys

from lake_common import ACCESS_KEY, ENDPOINT, SECRET_KEY, list_keys, make_bucket, marker_objects


def session(jars):
    from pyspark.sql import SparkSession

    # docs:begin spark-s3a
    spark = (
        SparkSession.builder.appName("lakecrypt")
        .config("spark.jars", ",".join(jars))  # hadoop-aws (as the Hadoop in pyspark) and the AWS SDK bundle
        .config("spark.hadoop.fs.s3a.endpoint", ENDPOINT)  # "http://127.0.0.1:9100"
        .config("spark.hadoop.fs.s3a.endpoint.region", "us-east-1")
        .config("spark.hadoop.fs.s3a.path.style.access", "true")
        .config("spark.hadoop.fs.s3a.connection.ssl.enabled", "false")
        .config("spark.hadoop.fs.s3a.aws.credentials.provider", "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider")
        .config("spark.hadoop.fs.s3a.access.key", ACCESS_KEY)
        .config("spark.hadoop.fs.s3a.secret.key", SECRET_KEY)
        # test-only: one local JVM, on loopback, no UI
        .master("local[2]").config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    # docs:end
    return spark


def same_rows(a, b):
    na, nb = a.count(), b.count()
    ab, ba = a.exceptAll(b).count(), b.exceptAll(a).count()
    return {"equal": na == nb and ab == 0 and ba == 0, "rows": nb, "source_rows": na, "missing": ab, "extra": ba}


def run(bucket, marker):
    s3 = make_bucket(bucket)
    jars = os.environ["LAKECRYPT_SPARK_JARS"].split(",")
    missing = [j for j in jars if not os.path.exists(j)]
    if missing:
        sys.exit(f"missing jars (scripts/test-deps.sh with LAKECRYPT_TEST_SPARK=1): {missing}")
    spark = session(jars)
    spark.sparkContext.setLogLevel("ERROR")
    src = spark.range(0, 200_000).selectExpr(
        "id",
        "cast(id % 7 as string) AS cat",
        "md5(cast(id as string)) AS note",
        f"CASE WHEN id % 1000 = 3 THEN concat('{marker}-', cast(id as string)) END AS tag",
    )
    src.write.mode("overwrite").partitionBy("cat").parquet(f"s3a://{bucket}/parted")
    src.coalesce(1).write.mode("overwrite").option("header", "true").csv(f"s3a://{bucket}/csv")
    parted = spark.read.parquet(f"s3a://{bucket}/parted").select("id", "cat", "note", "tag")
    csv = spark.read.option("header", "true").schema(src.schema).csv(f"s3a://{bucket}/csv")
    keys = [o["Key"] for o in list_keys(s3, bucket)]
    out = {
        "parted": same_rows(src, parted),
        "csv": same_rows(src, csv),
        "partitions": sorted({k.split("/")[1] for k in keys if k.startswith("parted/cat=")}),
        "csv_files": len([k for k in keys if k.startswith("csv/part-")]),
        "success_markers": sorted(k for k in keys if k.endswith("/_SUCCESS")),
        "temporary_left": [k for k in keys if "_temporary" in k],
    }
    spark.stop()
    out["marker_objects"] = marker_objects(s3, bucket, marker)
    print(json.dumps(out))


if __name__ == "__main__":
    if sys.argv[1] == "run":
        run(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
