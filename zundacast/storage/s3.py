"""S3 and S3-compatible stores (MinIO, R2, moto) through boto3.

The endpoint, credentials and region come from boto3's own sources (the standard
`AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` variables, the credentials chain,
`AWS_REGION` / `AWS_DEFAULT_REGION`, default us-east-1): nothing secret is read,
held or logged here. Every object is sent with a SHA-256 checksum the server
checks on receipt (its answer carries the checksum of what it stored), and large files are checked
again with `head_object` after the upload.

Conditional writes use S3's own compare-and-swap: `PutObject` with `If-Match: <ETag>` replaces only
the version that was read, `If-None-Match: *` creates only; a failed condition is HTTP 412
(PreconditionFailed) or 409 (ConditionalRequestConflict, a concurrent conditional write).
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError

from zundacast.storage import PermanentStoreError, StoreError, VersionConflict, check_key

MULTIPART_THRESHOLD = 64 * 1024 * 1024  # a daily episode (about 10 MB at 96 kbps) goes in one request
MULTIPART_CHUNK = 16 * 1024 * 1024
SHA256_METADATA = "sha256"  # x-amz-meta-sha256: the whole object's hash, also for multipart objects

# Errors no retry heals: the caller must fix credentials, the bucket name or its policy.
_PERMANENT_CODES = {
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "NoSuchBucket",
    "InvalidBucketName",
    "AccountProblem",
    "InvalidObjectState",
    "403",
    "400",
}
_CONFLICT_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}
_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}


def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> ("bucket", "some/prefix")."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise PermanentStoreError(f"store URL {url!r}: expected s3://bucket or s3://bucket/prefix")
    if "@" in parsed.netloc or parsed.query or parsed.fragment:
        # credentials never go in the URL (it is logged and part of cache keys)
        raise PermanentStoreError(
            "store URL: s3:// URLs take only a bucket and a prefix; credentials come from the environment "
            "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or an AWS profile)"
        )
    return parsed.netloc, parsed.path.strip("/")


def sha256_of_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as src:
        for block in iter(lambda: src.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


class S3Store:
    """The Store interface over `s3://bucket/prefix`."""

    def __init__(
        self, url: str, multipart_threshold: int = MULTIPART_THRESHOLD, multipart_chunk: int = MULTIPART_CHUNK
    ) -> None:
        self.url = url.rstrip("/")
        self.bucket, self.prefix = parse_s3_url(self.url)
        self.region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.transfer = TransferConfig(
            multipart_threshold=multipart_threshold, multipart_chunksize=multipart_chunk
        )
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            # boto3 reads AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL itself; standard retry mode backs off on 5xx
            config = Config(
                retries={"mode": "standard", "max_attempts": 4}, connect_timeout=10, read_timeout=60
            )
            self._client = boto3.session.Session().client("s3", region_name=self.region, config=config)
        return self._client

    def object_key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def describe(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.object_key(key)}"

    def put(self, key: str, data: bytes, content_type: str, cache_control: str = "") -> None:
        digest = hashlib.sha256(data).hexdigest()
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self.object_key(key),
            "Body": data,
            "ContentType": content_type,
            "ChecksumAlgorithm": "SHA256",
            "ChecksumSHA256": _b64(digest),
            "Metadata": {SHA256_METADATA: digest},
        }
        if cache_control:
            args["CacheControl"] = cache_control
        answer = self._call("write", key, self.client.put_object, **args)
        # S3 refuses a body whose SHA-256 differs from ChecksumSHA256 and answers with the checksum of what
        # it stored. That answer, not a later HEAD, is the check: several runs write feed.xml and the
        # pages, and a HEAD may already see another run's version.
        stored = answer.get("ChecksumSHA256") if isinstance(answer, dict) else None
        if stored is not None and stored != _b64(digest):
            raise StoreError(f"{self.describe(key)}: S3 stored a body with another SHA-256; retry the upload")
        if stored is None:  # an S3-compatible store that does not answer with checksums: look
            self.verify(key, len(data), digest)

    def put_file(self, key: str, path: str, content_type: str, cache_control: str = "") -> None:
        try:
            size = os.path.getsize(path)
            digest = sha256_of_file(path)
        except OSError as exc:
            raise StoreError(f"cannot read {path} to upload it to {self.describe(key)}: {exc}") from exc
        extra: dict[str, Any] = {
            "ContentType": content_type,
            "ChecksumAlgorithm": "SHA256",
            "Metadata": {SHA256_METADATA: digest},
        }
        if cache_control:
            extra["CacheControl"] = cache_control
        self._call(
            "upload",
            key,
            self.client.upload_file,
            path,
            self.bucket,
            self.object_key(key),
            ExtraArgs=extra,
            Config=self.transfer,
        )
        self.verify(key, size, digest)

    def head(self, key: str) -> dict[str, Any] | None:
        """The object's metadata (head_object's answer), or None when it does not exist."""
        try:
            return self.client.head_object(
                Bucket=self.bucket, Key=self.object_key(key), ChecksumMode="ENABLED"
            )
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._error("check", key, exc) from exc
        except (BotoCoreError, OSError) as exc:
            raise self._error("check", key, exc) from exc

    def verify(self, key: str, size: int, sha256_hex: str) -> None:
        """Check that the object landed whole: its size, and its SHA-256 where the store reports it."""
        head = self.head(key)
        where = self.describe(key)
        if head is None:
            raise StoreError(f"{where} is missing right after its upload; retry the upload")
        if head.get("ContentLength") != size:
            raise StoreError(f"{where} holds {head.get('ContentLength')} bytes after upload, expected {size}")
        checksum = head.get("ChecksumSHA256") or ""
        # a multipart object's checksum is a checksum of the parts' checksums ("COMPOSITE", S3 adds "-N",
        # moto does not): only a single-request object's checksum is the whole object's SHA-256
        whole_object = (
            head.get("ChecksumType") != "COMPOSITE"
            and "-" not in checksum
            and size < self.transfer.multipart_threshold
        )
        if checksum and whole_object and checksum != _b64(sha256_hex):
            raise StoreError(f"{where}: SHA-256 after upload differs from the local file's; retry the upload")
        stored = (head.get("Metadata") or {}).get(SHA256_METADATA)
        if stored is not None and stored != sha256_hex:
            raise StoreError(f"{where}: sha256 metadata {stored} differs from the local file's {sha256_hex}")

    def get(self, key: str) -> bytes | None:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))
            return answer["Body"].read()
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise self._error("read", key, exc) from exc
        except (BotoCoreError, OSError) as exc:
            raise self._error("read", key, exc) from exc

    def get_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))
            return answer["Body"].read(), answer["ETag"]
        except ClientError as exc:
            if _code(exc) in _MISSING_CODES:
                return None, None
            raise self._error("read", key, exc) from exc
        except (BotoCoreError, OSError) as exc:
            raise self._error("read", key, exc) from exc

    def put_if(
        self, key: str, data: bytes, content_type: str, expected: str | None, cache_control: str = ""
    ) -> str:
        digest = hashlib.sha256(data).hexdigest()
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self.object_key(key),
            "Body": data,
            "ContentType": content_type,
            "ChecksumAlgorithm": "SHA256",
            "ChecksumSHA256": _b64(digest),  # S3 refuses the write if the body arrives different
            "Metadata": {SHA256_METADATA: digest},
        }
        if cache_control:
            args["CacheControl"] = cache_control
        if expected is None:
            args["IfNoneMatch"] = "*"
        else:
            args["IfMatch"] = expected
        try:
            # no head_object afterwards: another run may already have replaced it, legitimately
            return str(self.client.put_object(**args)["ETag"])
        except ClientError as exc:
            if _code(exc) in _CONFLICT_CODES or (expected is not None and _code(exc) in _MISSING_CODES):
                raise self._conflict(key, exc) from exc
            raise self._error("write", key, exc) from exc
        except (BotoCoreError, OSError) as exc:
            raise self._error("write", key, exc) from exc

    def delete_if(self, key: str, expected: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key), IfMatch=expected)
        except ClientError as exc:
            if _code(exc) in _MISSING_CODES:
                return
            if _code(exc) in _CONFLICT_CODES:
                raise self._conflict(key, exc) from exc
            raise self._error("delete", key, exc) from exc
        except (BotoCoreError, OSError) as exc:
            raise self._error("delete", key, exc) from exc

    def sha256(self, key: str) -> str | None:
        """From the x-amz-meta-sha256 every put writes (a HEAD, not a download)."""
        head = self.head(key)
        if head is None:
            return None
        stored = (head.get("Metadata") or {}).get(SHA256_METADATA)
        if stored:
            return str(stored)
        data = self.get(key)  # written by something else: hash what is there
        return hashlib.sha256(data).hexdigest() if data is not None else None

    def list_keys(self, under: str = "") -> list[str]:
        """Every key (relative to the prefix) under `under`, sorted."""
        start = (
            self.object_key(under.strip("/")) + "/" if under else (f"{self.prefix}/" if self.prefix else "")
        )
        keys: list[str] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=start
            ):
                for item in page.get("Contents", []):
                    full = item["Key"]
                    keys.append(full[len(self.prefix) + 1 :] if self.prefix else full)
        except (ClientError, BotoCoreError, OSError) as exc:
            raise self._error("list", under or "(all)", exc) from exc
        return sorted(keys)

    def public_url(self, key: str, base_url: str = "") -> str:
        if base_url:
            return base_url.rstrip("/") + "/" + check_key(key)
        path = quote(self.object_key(key))
        endpoint = (self.client.meta.endpoint_url or "").rstrip("/")
        host = urlparse(endpoint).hostname or ""
        if host.endswith("amazonaws.com") or not endpoint:
            if "." in self.bucket:  # dotted bucket names break the TLS wildcard of virtual hosts
                return f"https://s3.{self.region}.amazonaws.com/{self.bucket}/{path}"
            return f"https://{self.bucket}.s3.{self.region}.amazonaws.com/{path}"
        return f"{endpoint}/{self.bucket}/{path}"  # MinIO, R2, moto: path style on the configured endpoint

    def _call(self, action: str, key: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except (ClientError, BotoCoreError, OSError) as exc:
            raise self._error(action, key, exc) from exc
        except Exception as exc:  # s3transfer wraps failures in its own types
            raise self._error(action, key, exc) from exc

    def _conflict(self, key: str, exc: BaseException) -> VersionConflict:
        return VersionConflict(f"{self.describe(key)} changed since it was read ({_code(exc)})")

    def _error(self, action: str, key: str, exc: BaseException) -> StoreError:
        # botocore messages name the operation and the error code, never the credentials
        where = f"bucket {self.bucket!r}, key {self.object_key(key)!r}"
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return PermanentStoreError(
                f"cannot {action} {where}: no AWS credentials found; set AWS_ACCESS_KEY_ID and "
                f"AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the environment"
            )
        code = _code(exc)
        if code in _PERMANENT_CODES:
            return PermanentStoreError(
                f"cannot {action} {where}: {code}: {exc}; check the bucket name, the credentials and the "
                f"bucket policy (s3:PutObject, s3:GetObject, s3:ListBucket)"
            )
        return StoreError(f"cannot {action} {where}: {type(exc).__name__}: {exc}")


def _code(exc: BaseException) -> str:
    while exc is not None:
        if isinstance(exc, ClientError):
            return str(exc.response.get("Error", {}).get("Code", ""))
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return ""
