"""Save the S3 result storage block the workers share:
`uv run --extra aws-results python -m deployments.results_block --bucket BUCKET [options]`.

Stage results (and with them the caches that let a rerun skip finished stages) live in this bucket,
so a date started on one worker can be rerun on any other. The block holds where, never who: no
keys are saved in Prefect's database; each worker's boto3 finds its credentials in its own
environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an instance role ...).
Prints the value for PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK (`s3-bucket/NAME`).
"""

from __future__ import annotations

import argparse
import os
import sys

DEFAULT_NAME = "zundacast-results"


class ResultsBlockError(Exception):
    """The block cannot be made as asked; the message says why and what to do."""


def save_results_block(bucket: str, name: str = DEFAULT_NAME, folder: str = "prefect-results",
                       region: str = "", endpoint_url: str = "") -> str:
    """Save (or replace) the S3Bucket block `name`; returns `s3-bucket/NAME`."""
    try:
        from prefect_aws import AwsCredentials, S3Bucket
        from prefect_aws.client_parameters import AwsClientParameters
    except ImportError as exc:
        raise ResultsBlockError(
            "prefect-aws is not installed: run this with `uv run --extra aws-results python -m "
            "deployments.results_block ...` (workers install the extra themselves)") from exc
    if not bucket or "/" in bucket:
        raise ResultsBlockError(f"--bucket {bucket!r}: give a bucket name only (use --folder for a prefix)")
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or ""
    credentials = AwsCredentials(  # no keys: the worker's environment supplies them at run time
        region_name=region or None,
        aws_client_parameters=AwsClientParameters(endpoint_url=endpoint_url or None),
    )
    S3Bucket(bucket_name=bucket, bucket_folder=folder.strip("/"), credentials=credentials).save(
        name, overwrite=True)
    return f"s3-bucket/{name}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployments.results_block",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--bucket", required=True, help="the bucket that holds the results")
    parser.add_argument("--name", default=DEFAULT_NAME, help=f"block name (default {DEFAULT_NAME})")
    parser.add_argument("--folder", default="prefect-results", help="key prefix inside the bucket")
    parser.add_argument("--region", default="", help="default: AWS_REGION / AWS_DEFAULT_REGION")
    parser.add_argument("--endpoint-url", default="",
                        help="an S3-compatible store (MinIO, R2, ...): its endpoint URL")
    parser.add_argument("--verbose", action="store_true", help="tracebacks on errors")
    args = parser.parse_args(argv)
    try:
        print(save_results_block(args.bucket, args.name, args.folder, args.region, args.endpoint_url))
    except ResultsBlockError as exc:
        if args.verbose:
            raise
        print(f"zundacast: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
