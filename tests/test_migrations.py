"""The migrations describe the models as they are."""
import subprocess
import sys
from pathlib import Path

from tests.conftest import embedded_env

ROOT = Path(__file__).resolve().parent.parent


def test_the_models_need_no_new_migration(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "makemigrations", "--check", "--dry-run"],
        env=embedded_env(tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, f"makemigrations --check found changes without a migration:\n{done.stdout}{done.stderr}"
