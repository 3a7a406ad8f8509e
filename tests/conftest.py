import pytest
from django.contrib.auth.models import User

from threads_app.models import Credential


@pytest.fixture
def alice(db):
    return User.objects.create_user("alice", "alice@example.com", "alice-password")


@pytest.fixture
def bob(db):
    return User.objects.create_user("bob", "bob@example.com", "bob-password")


@pytest.fixture
def credential(db):
    cred = Credential(name="alpha", base_url="http://127.0.0.1:9/v1", project_id="proj_alpha")
    cred.api_key = "sk-test-alpha-key-1234"
    cred.save()
    return cred
