"""Settings come from MEDAL_ variables and, for secrets, from files in MEDAL_SECRETS_DIR."""

from __future__ import annotations

from pathlib import Path

import pytest

from medal.preflight import ConfigurationError, load_settings
from medal.settings import Settings


def test_defaults_are_embedded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MEDAL_DATA_DIR", str(tmp_path))
    settings = Settings.from_environment()
    assert not settings.distributed
    assert settings.effective_database_url == f"sqlite+aiosqlite:///{tmp_path.resolve() / 'medal.db'}"
    assert settings.objects_dir == tmp_path / "objects"


def test_secrets_can_come_from_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "MEDAL_DEID_SECRET").write_text("from-a-file")
    (tmp_path / "MEDAL_API_KEYS").write_text("k1,k2")
    monkeypatch.setenv("MEDAL_SECRETS_DIR", str(tmp_path))
    settings = Settings.from_environment()
    assert settings.deid_secret.get_secret_value() == "from-a-file"
    assert [key.get_secret_value() for key in settings.api_keys] == ["k1", "k2"]


def test_invalid_values_are_named_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDAL_PORT", "99999")
    monkeypatch.setenv("MEDAL_BUS_NAMESPACE", "Not Valid")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    message = str(caught.value)
    assert "MEDAL_PORT" in message and "MEDAL_BUS_NAMESPACE" in message and "\n" not in message
