"""Check the machine before a run starts: folders writable with room, the S3 endpoint reachable.

A full disk or a read-only store found after ten minutes of synthesis, wrapped in Prefect's retries and
tracebacks, tells a person little; found here, before Prefect starts, it is one line naming the
setting (`--store`, `ZUNDACAST_STORE`, the show file's `[storage] url`, `ZUNDACAST_HOME`,
`PREFECT_HOME`, `AWS_ENDPOINT_URL_S3`) and what to do. Failures raise `EnvironmentProblem`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from zundacast.errors import EnvironmentProblem, os_error_message
from zundacast.prefect_api import prefect_home
from zundacast.storage import StoreError, check_store_url

MB = 1024 * 1024
PROBE_BYTES = 64 * 1024  # a write this big must succeed: a disk with only a few blocks left fails it
HOME_MIN_FREE = 64 * MB  # the utterance cache, the work WAVs and the rendered MP3
PREFECT_MIN_FREE = 16 * MB  # Prefect's SQLite database and persisted results


def episode_bytes(bitrate_kbps: int, minutes: float = 20) -> int:
    """A generous size for one episode's files (its MP3 of `minutes` and the small files beside it)."""
    return int(bitrate_kbps * 1000 / 8 * minutes * 60) + 2 * MB


def check_writable_folder(folder: Path, setting: str, min_free: int) -> None:
    """`folder` exists (made if missing), takes a write and has `min_free` bytes free."""
    places = {setting: str(folder)}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".zundacast-probe-") as probe:
            probe.write(b"\0" * PROBE_BYTES)
            probe.flush()
            os.fsync(probe.fileno())
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        if not exc.filename:
            exc.filename = str(folder)
        raise EnvironmentProblem(os_error_message(exc, places)) from exc
    if free < min_free:
        raise EnvironmentProblem(
            f"only {free / MB:.1f} MB free on the device holding {folder} ({setting}); a run needs about "
            f"{min_free / MB:.0f} MB there: free some space or point {setting} at another folder")


def check_s3_store(url: str, setting: str) -> None:
    """The bucket's endpoint answers and the bucket exists (permission questions are left to the upload:
    a writer may lack the right to list the bucket)."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

    from zundacast.storage.s3 import parse_s3_url

    bucket, _prefix = parse_s3_url(url)
    endpoint_setting = next((name for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
                             if os.environ.get(name)), "")
    config = Config(connect_timeout=3, read_timeout=10, retries={"total_max_attempts": 2, "mode": "standard"})
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    try:
        client = boto3.client("s3", config=config, region_name=region)
    except (BotoCoreError, ValueError) as exc:
        raise EnvironmentProblem(f"cannot set up S3 for {url} ({setting}): {exc}: check "
                                 f"{endpoint_setting or 'AWS_REGION'}") from exc
    endpoint = client.meta.endpoint_url
    named = f"{endpoint} (from {endpoint_setting})" if endpoint_setting else endpoint
    try:
        client.head_bucket(Bucket=bucket)
    except NoCredentialsError as exc:
        raise EnvironmentProblem(
            f"no AWS credentials for {url} ({setting}): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "or AWS_PROFILE") from exc
    except EndpointConnectionError as exc:
        what = endpoint_setting or "AWS_ENDPOINT_URL_S3 (for MinIO, R2 …)"
        raise EnvironmentProblem(
            f"S3 endpoint {named} is not reachable for bucket {bucket!r}: check {what}, that the store is "
            "running and the network") from exc
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchBucket"):
            raise EnvironmentProblem(
                f"bucket {bucket!r} does not exist at {named}: create it, or fix {setting}") from exc
        # 403 and the rest: the upload itself says what the store refused
    except BotoCoreError as exc:  # timeouts, proxies, TLS
        raise EnvironmentProblem(
            f"S3 endpoint {named} did not answer for bucket {bucket!r} ({type(exc).__name__}): check "
            f"{endpoint_setting or 'the network'} and that the store is running") from exc


def check_store(url: str, setting: str, bitrate_kbps: int) -> None:
    try:
        check_store_url(url)
    except StoreError as exc:
        raise EnvironmentProblem(f"{setting}: {exc}") from None
    if url.startswith("s3://"):
        check_s3_store(url, setting)
        return
    from zundacast.storage.local import folder_of

    try:
        folder = folder_of(url)
    except StoreError as exc:
        raise EnvironmentProblem(f"{setting}: {exc}") from None
    check_writable_folder(folder.resolve(), setting, episode_bytes(bitrate_kbps))


def check_environment(store_url: str, store_setting: str, home: Path, bitrate_kbps: int) -> None:
    """Everything a run writes to, in the order a person would fix them."""
    check_writable_folder(home, "ZUNDACAST_HOME", HOME_MIN_FREE)
    check_writable_folder(prefect_home(), "PREFECT_HOME", PREFECT_MIN_FREE)
    check_store(store_url, store_setting, bitrate_kbps)
