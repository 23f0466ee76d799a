"""A real PACS for the tests: Debian's Orthanc with its DICOMweb plugin, on free loopback ports.

Each :class:`Orthanc` is its own process with a temporary JSON configuration and storage (never the
system service). Under CI=true a missing ``Orthanc`` binary or plugin fails the run (``unavailable``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from medal.local_server import free_port
from tests.conftest import unavailable

PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
ORTHANC_AET = "ORTHANC"


@dataclass
class Orthanc:
    """One running Orthanc: ``url`` (REST), ``dicomweb`` (DICOMweb root), ``dicom_port`` (its SCP)."""

    root: Path
    modalities: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    http_port: int = 0
    dicom_port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    def config(self) -> dict[str, Any]:
        return {
            "Name": "medal-test-pacs",
            "StorageDirectory": str(self.root / "storage"),
            "IndexDirectory": str(self.root / "index"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": ORTHANC_AET,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "HttpServerThreads": 4,
            "ConcurrentJobs": 1,
            "DicomScuTimeout": 10,
            "DicomAlwaysAllowStore": True,
            "DicomCheckCalledAet": False,
            "DicomModalities": {name: list(entry) for name, entry in self.modalities.items()},
            "Plugins": [str(PLUGIN)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False, "Host": "127.0.0.1"},
            "SaveJobs": False,
            "StorageCompression": False,
        }

    def start(self) -> Orthanc:
        binary = shutil.which("Orthanc")
        if binary is None or not PLUGIN.is_file():
            unavailable("Orthanc with its DICOMweb plugin (apt-get install orthanc orthanc-dicomweb)")
        self.http_port, self.dicom_port = free_port(), free_port()
        (self.root / "storage").mkdir(parents=True, exist_ok=True)
        config = self.root / "orthanc.json"
        config.write_text(json.dumps(self.config()))
        log = (self.root / "orthanc.log").open("wb")
        self.process = subprocess.Popen([str(binary), str(config)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited at start: {(self.root / 'orthanc.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/system", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError("Orthanc did not start within 30 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    # REST helpers (Orthanc's own API)
    def upload(self, data: bytes) -> dict[str, Any]:
        response = httpx.post(f"{self.url}/instances", content=data, timeout=30)
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.url}{path}", timeout=30)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: Any, timeout: float = 120) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body, timeout=timeout)
