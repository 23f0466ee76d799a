"""`medal ingest` in embedded mode: per-file outcomes, a summary, exit status 1 when anything is refused."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.ingest.conftest import bundled


def test_medal_ingest_files_folders_and_zips(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox" / "Smith John"
    inbox.mkdir(parents=True)
    (inbox / "ct.dcm").write_bytes(bundled("CT_small.dcm"))
    (inbox / "notes.txt").write_text("not an image")
    with zipfile.ZipFile(tmp_path / "batch.zip", "w") as archive:
        archive.writestr("study/mr.dcm", bundled("MR_small.dcm"))
        archive.writestr("../escape.dcm", bundled("MR_small.dcm"))
    env = {**os.environ, "MEDAL_DATA_DIR": str(tmp_path / "state"), "MEDAL_LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "medal.cli", "ingest", str(inbox.parent), str(tmp_path / "batch.zip")]
    done = subprocess.run([*command, "--project", "cli"], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("accepted") and line.endswith("ct.dcm") for line in lines)
    assert any(line.startswith("refused") and "notes.txt" in line and "not_dicom" in line for line in lines)
    assert any(line.startswith("refused") and "unsafe_name" in line for line in lines)
    assert "4 files: 2 accepted, 0 quarantined, 0 duplicates, 2 refused" in lines[-1]
    again = subprocess.run(
        [sys.executable, "-m", "medal.cli", "ingest", str(inbox / "ct.dcm"), "--project", "cli"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert again.returncode == 0 and again.stdout.splitlines()[0].startswith("duplicate")
    stored = "".join(p.name for p in (tmp_path / "state").rglob("*"))
    assert "Smith" not in stored and "ct.dcm" not in stored
