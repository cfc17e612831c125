import os

import pytest
from django.contrib.auth import get_user_model


@pytest.fixture(autouse=True)
def isolated_storage(settings, tmp_path):
    """Keep each test's media and working directories apart."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.SLUICE_WORK_DIR = tmp_path / "work"
    settings.SLUICE_RETRY_BACKOFF = 0
    return tmp_path


@pytest.fixture
def owner(db):
    return get_user_model().objects.create_user("owner", password="pw-owner-123")


@pytest.fixture
def other_user(db):
    return get_user_model().objects.create_user("other", password="pw-other-123")


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user("staff", password="pw-staff-123", is_staff=True, is_superuser=True)


# The real-servers suite needs the servers `python -m tests.realservers` starts.
collect_ignore = [] if os.environ.get("SLUICE_REAL_SERVERS") else ["realservers"]
