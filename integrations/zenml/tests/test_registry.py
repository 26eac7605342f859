"""The container registry's own rules, without services: which images are
inside its `uri`, what ZenML's engine is told, the repo-digest form, and the
config's validation."""

from datetime import datetime, timezone
from uuid import uuid4

import pytest
from pydantic import ValidationError
from zenml.enums import StackComponentType

from flavorbox_zenml.flavor import FlavorboxContainerRegistryConfig
from flavorbox_zenml.registry import (
    FlavorboxContainerRegistry,
    _called_by_engine_push,
    _strip_tag,
)


def registry(uri, **config):
    now = datetime.now(timezone.utc)
    return FlavorboxContainerRegistry(
        name="team",
        id=uuid4(),
        config=FlavorboxContainerRegistryConfig(uri=uri, component="team", **config),
        flavor="flavorbox",
        type=StackComponentType.CONTAINER_REGISTRY,
        user=None,
        created=now,
        updated=now,
    )


@pytest.mark.parametrize(
    "uri, image, inside",
    [
        ("127.0.0.1:5000/team", "127.0.0.1:5000/team/app:1", True),
        ("127.0.0.1:5000/team", "127.0.0.1:5000/team:1", True),
        ("127.0.0.1:5000/team", "127.0.0.1:5000/team@sha256:" + "a" * 64, True),
        ("127.0.0.1:5000/team/", "127.0.0.1:5000/team/a/b/c:1", True),
        # Look-alikes ZenML's own prefix check would take.
        ("127.0.0.1:5000/team", "127.0.0.1:5000/team-evil/app:1", False),
        ("127.0.0.1:5000/team", "127.0.0.1:5000/teamx:1", False),
        ("127.0.0.1:5000", "127.0.0.1:50000/app:1", False),
        ("127.0.0.1:5000/team", "127.0.0.2:5000/team/app:1", False),
        ("127.0.0.1:5000/team", "team/app:1", False),
        # Docker Hub's two spellings are one registry.
        ("docker.io/team", "index.docker.io/team/app:1", True),
        ("index.docker.io/team", "docker.io/team/app:1", True),
        ("docker.io/team", "docker.io/teams/app:1", False),
    ],
)
def test_inside_is_segment_by_segment(uri, image, inside):
    component = registry(uri)
    assert component.is_inside(image) is inside
    if inside:
        component.check_inside(image)
    else:
        with pytest.raises(ValueError, match="does not belong to container registry"):
            component.check_inside(image)


def test_the_engine_asks_before_every_push_to_the_host():
    """ZenML's engine calls `prepare_image_push` only for images this says
    yes to: every image on the host, look-alikes included (refused there)."""
    component = registry("127.0.0.1:5000/team")
    assert component.is_valid_image_name_for_registry("127.0.0.1:5000/team-evil/app:1")
    assert component.is_valid_image_name_for_registry("127.0.0.1:5000/other:1")
    assert not component.is_valid_image_name_for_registry("127.0.0.1:5001/team/app:1")
    assert not component.is_valid_image_name_for_registry("127.0.0.1:50001/team:1")


def test_prepare_image_push_refuses_a_look_alike_before_running_flavorbox():
    component = registry("127.0.0.1:5000/team", flavorbox_binary="/nonexistent/flavorbox")
    with pytest.raises(ValueError, match="does not belong"):
        component.prepare_image_push("127.0.0.1:5000/team-evil/app:1")


def test_called_directly_is_not_the_engine():
    assert not _called_by_engine_push()


@pytest.mark.parametrize(
    "image, repo",
    [
        ("127.0.0.1:5000/team/app:1", "127.0.0.1:5000/team/app"),
        ("127.0.0.1:5000/team/app", "127.0.0.1:5000/team/app"),
        ("127.0.0.1:5000/team/app:1@sha256:" + "b" * 64, "127.0.0.1:5000/team/app"),
        ("host/app", "host/app"),
    ],
)
def test_repo_digest_keeps_the_port(image, repo):
    assert _strip_tag(image) == repo


@pytest.mark.parametrize(
    "config, message",
    [
        ({"component": "not a name!"}, "not a Flavorbox registry component name"),
        ({"component": ""}, "not a Flavorbox registry component name"),
        ({"component": "-dash"}, "not a Flavorbox registry component name"),
        ({"component": "a" * 129}, "not a Flavorbox registry component name"),
        ({"component": "team", "server_url": "ftp://x"}, "must start with `https://`"),
    ],
)
def test_config_errors_say_what_to_do(config, message):
    with pytest.raises(ValidationError, match=message):
        FlavorboxContainerRegistryConfig(uri="127.0.0.1:5000/team", **config)


def test_server_url_loses_its_trailing_slash():
    config = FlavorboxContainerRegistryConfig(
        uri="127.0.0.1:5000/team", component="team", server_url="http://127.0.0.1:8080/"
    )
    assert config.server_url == "http://127.0.0.1:8080"
