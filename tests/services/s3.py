"""An S3 endpoint for the tests: moto's server (the `moto[server]` package) on loopback.

Tansu keeps its topics in S3 with `--storage-engine s3://BUCKET/`, so a
broker backed by this endpoint can be stopped and started again without
losing its data (the in-memory broker forgets everything when it stops).
The endpoint lives as long as this process's `MotoServer`; its buckets are
in its memory.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import boto3

from tests.services.ports import free_port, tail, terminate, wait_until

# Any values do: moto accepts every key. Tansu reads them from the environment.
REGION = "eu-west-1"
_ACCESS_KEY = "writech-tests"
_SECRET_KEY = "writech-tests-secret"


def moto_server_binary() -> Path:
    """The `moto_server` command of this environment; FileNotFoundError saying what to install."""
    found = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    if found is None:
        raise FileNotFoundError("moto_server is not installed (pip install 'moto[server]')")
    return Path(found)


class MotoServer:
    """moto's S3 on a free loopback port, stopped by the PID it was started with."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        """The variables an S3 client (Tansu's object_store) needs to use this endpoint."""
        return {
            "AWS_ENDPOINT": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": _ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": _SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
        }

    def start(self, timeout: float = 30) -> None:
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [str(moto_server_binary()), "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until(self._answers, timeout, f"moto S3 server on port {self.port}")
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"moto_server did not start; its log:\n{self.log_tail()}") from None

    def create_bucket(self, name: str) -> None:
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=_ACCESS_KEY,
            aws_secret_access_key=_SECRET_KEY,
            region_name=REGION,
        )
        client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})

    def stop(self) -> None:
        """SIGTERM to the PID it was started with (SIGKILL if it hangs)."""
        process, self._process = self._process, None
        terminate(process, 15)

    def log_tail(self, lines: int = 30) -> str:
        return tail(self.log_path, lines)

    def _answers(self) -> bool:
        if self._process is None or self._process.poll() is not None:
            raise RuntimeError(f"moto_server exited; its log:\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(self.endpoint, timeout=1):
                return True
        except (OSError, urllib.error.URLError):
            return False
