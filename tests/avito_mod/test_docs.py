"""The README is a front page and the manual beside it holds: its links lead somewhere, every
setting is documented, and MkDocs builds it in strict mode (a broken link or anchor, or a page
left out of mkdocs.yml's nav, fails)."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
APPS = ("avito_mod", "accounts", "ads", "classifier", "moderation")
# A Markdown link's target, without its anchor.
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)\s]*)?\)")
# The names avito_mod/env.py's typed readers are called with (env_int("ADS_MAX_PHOTOS", …)).
SETTING = re.compile(r"\benv_[a-z_]+\(\s*\"([A-Z][A-Z0-9_]+)\"")


def test_the_readme_is_a_front_page():
    lines = README.read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; the rest belongs in docs/"
    first_screen = "\n".join(lines[:40])
    assert "bin/run" in first_screen
    assert "bin/test" in first_screen


def test_the_readmes_links_lead_to_files():
    targets = [t for t in LINK.findall(README.read_text()) if "://" not in t]
    assert len(targets) > 20
    missing = [target for target in targets if not (ROOT / target).is_file()]
    assert not missing, missing


def test_every_setting_read_from_the_environment_is_documented():
    names = set()
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            names.update(SETTING.findall(path.read_text()))
    assert "ADS_MAX_PHOTOS" in names and "SIGNIN_FAILURE_LIMIT" in names
    pages = ("configuration.md", "deployment.md")
    documented = "".join((ROOT / "docs" / page).read_text() for page in pages)
    missing = sorted(name for name in names if f"`{name}`" not in documented)
    assert not missing, f"not in docs/configuration.md: {missing}"


def test_the_docs_build_in_strict_mode(tmp_path):
    mkdocs = Path(sys.executable).parent / "mkdocs"
    result = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "cost-of-a-photo" / "index.html").is_file()
