"""Fixtures of the integration's tests.

The unit tests need only ZenML. The pipeline tests run against real parts
the Rust suite starts (tests/tests/all/zenml.rs, `cargo test -p
flavorbox-tests --test all zenml::`): a Docker engine, a registry behind
htpasswd whose password only Flavorbox holds, a Flavorbox home and a
`flavorbox serve` with a tenant. It passes them in `FLAVORBOX_ZENML_PLAN`
(JSON), runs pytest in a fresh project directory with ZenML's config in a
temporary directory, and checks afterwards what the tests wrote to
`plan["results"]` against the registry itself.
"""

import json
import os
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


@pytest.fixture(scope="session")
def plan():
    raw = os.environ.get("FLAVORBOX_ZENML_PLAN")
    if not raw:
        pytest.fail(
            "FLAVORBOX_ZENML_PLAN is not set: the pipeline tests run against the "
            "engine, registry and server the Rust suite starts; run them with "
            "`cargo test -p flavorbox-tests --test all zenml::`"
        )
    return json.loads(raw)


@pytest.fixture(scope="session")
def results(plan):
    """What the tests saw, written for the Rust side to check."""
    seen = {}
    yield seen
    with open(plan["results"], "w") as f:
        json.dump(seen, f)


@pytest.fixture(scope="session")
def client(plan):
    """ZenML's client on a repository in the working directory, with both
    `flavorbox` flavors registered."""
    from zenml.client import Client
    from zenml.enums import StackComponentType

    Client.initialize()
    client = Client()
    client.create_flavor(
        source="flavorbox_zenml.FlavorboxContainerRegistryFlavor",
        component_type=StackComponentType.CONTAINER_REGISTRY,
    )
    client.create_flavor(
        source="flavorbox_zenml.FlavorboxImageBuilderFlavor",
        component_type=StackComponentType.IMAGE_BUILDER,
    )
    client.create_stack_component(
        name="flavorbox-builder",
        flavor="flavorbox",
        component_type=StackComponentType.IMAGE_BUILDER,
        configuration={},
    )
    client.create_stack_component(
        name="docker",
        flavor="local_docker",
        component_type=StackComponentType.ORCHESTRATOR,
        configuration={},
    )
    return client


@pytest.fixture(scope="session")
def parent_image(plan):
    """The steps' parent image, with `flavorbox_zenml` installed from its
    wheel (see step_image.py: nothing can be pulled here)."""
    import step_image

    with tempfile.TemporaryDirectory() as scratch:
        wheels, site = os.path.join(scratch, "wheels"), os.path.join(scratch, "site")
        offline = dict(os.environ, PIP_NO_INDEX="1")
        for command in (
            ["wheel", "--no-deps", "--no-build-isolation", "-w", wheels, os.path.dirname(HERE)],
            ["install", "--no-deps", "--target", site, "--find-links", wheels, "flavorbox-zenml"],
        ):
            subprocess.run(
                [sys.executable, "-m", "pip", "--quiet", *command], env=offline, check=True
            )
        step_image.import_image(plan["parent_image"], site)
    return plan["parent_image"]
