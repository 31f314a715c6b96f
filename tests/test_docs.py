"""The README documents every setting (settings are data: tracker/config.py)."""

from __future__ import annotations

from tracker.config import PROJECT_ROOT, SETTINGS


def test_every_setting_is_documented_in_the_readme():
    readme = (PROJECT_ROOT / "README.md").read_text()
    missing = [s.name for s in SETTINGS if f"`TRACKER_{s.name}`" not in readme]
    assert missing == [], f"add these settings to the README's table: {missing}"
