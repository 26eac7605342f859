"""A real ZenML pipeline on the local Docker orchestrator whose step image
the `flavorbox` image builder built and pushed through Flavorbox: with the
CLI's local state, then through a `flavorbox serve`; and the push ZenML's
engine would make by itself, refused."""

import importlib
import os
import sys

import pytest
from zenml.config import DockerSettings
from zenml.enums import ExecutionStatus, StackComponentType

REGISTRY = StackComponentType.CONTAINER_REGISTRY

# The pipeline's module, in the project (ZenML's source root): the step
# image carries it, and the step runs it in the container.
PIPELINE_MODULE = '''
import os

from zenml import pipeline, step


@step
def where() -> dict:
    """Where the step ran: a Docker container has /.dockerenv."""
    return {"in_docker": os.path.exists("/.dockerenv"), "pid": os.getpid()}


@pipeline(enable_cache=False)
def flavorbox_pipeline():
    where()
'''


@pytest.fixture(scope="module")
def pipeline():
    with open("flavorbox_pipeline.py", "w") as f:
        f.write(PIPELINE_MODULE)
    sys.path.insert(0, os.getcwd())
    return importlib.import_module("flavorbox_pipeline").flavorbox_pipeline


def use_stack(client, name, registry_config):
    """A stack of the local Docker orchestrator, the default artifact store,
    the `flavorbox` image builder and a `flavorbox` container registry."""
    client.create_stack_component(
        name=name, flavor="flavorbox", component_type=REGISTRY, configuration=registry_config
    )
    client.create_stack(
        name=name,
        components={
            StackComponentType.ORCHESTRATOR: "docker",
            StackComponentType.ARTIFACT_STORE: "default",
            StackComponentType.IMAGE_BUILDER: "flavorbox-builder",
            REGISTRY: name,
        },
    )
    client.activate_stack(name)


def local_registry(plan):
    """The `flavorbox` registry's config for the CLI's local state."""
    local = plan["local"]
    return {"uri": plan["uri"], "component": local["component"], "flavorbox_home": local["home"]}


def settings(parent_image, repository, **more):
    """The step image: the parent image, the project's files in it (so ZenML
    builds with the stack's image builder rather than retagging the parent
    and pushing it with its own engine) and nothing to install from an
    index. `flavorbox_zenml` is in the parent image: the step loads the
    stack's flavors."""
    values = dict(
        parent_image=parent_image,
        target_repository=repository,
        python_package_installer="pip",
        install_stack_requirements=False,
        allow_download_from_artifact_store=False,
    )
    values.update(more)
    return {"docker": DockerSettings(**values)}


def run_in_docker(client, pipeline, parent_image, repository):
    run = pipeline.with_options(settings=settings(parent_image, repository))()
    run = client.get_pipeline_run(run.id)
    assert run.status == ExecutionStatus.COMPLETED, run.status
    seen = run.steps["where"].output.load()
    assert seen["in_docker"] is True, seen
    return run.build.images["orchestrator"].image


def test_step_image_is_built_and_pushed_through_flavorbox(
    plan, client, parent_image, pipeline, results
):
    use_stack(client, "fb-local", local_registry(plan))
    image = run_in_docker(client, pipeline, parent_image, "pipeline-local")
    # The step ran the exact manifest Flavorbox pushed (the Rust side checks
    # the digest against the registry's).
    assert image.startswith(f"{plan['uri']}/pipeline-local@sha256:"), image
    results["local"] = image


def test_step_image_is_pushed_through_a_flavorbox_server(
    plan, client, parent_image, pipeline, results
):
    server = plan["server"]
    # The tenant token lives in a ZenML secret; the component refers to it.
    client.create_secret(name="flavorbox", values={"token": server["token"]})
    use_stack(
        client,
        "fb-server",
        {
            "uri": plan["uri"],
            "component": server["component"],
            "server_url": server["url"],
            "token": "{{flavorbox.token}}",
        },
    )
    stored = client.get_stack_component(REGISTRY, "fb-server").configuration
    assert stored["token"] == "{{flavorbox.token}}"
    image = run_in_docker(client, pipeline, parent_image, "pipeline-server")
    # The server pushed from the upload: the local steps ran the uploaded
    # image by its id (the Rust side checks it is the pushed manifest's
    # config).
    assert image.startswith("sha256:"), image
    results["server"] = image


def test_a_push_by_zenmls_engine_is_refused_before_anything_is_pushed(
    plan, client, parent_image, pipeline, results
):
    from flavorbox_zenml.registry import FlavorboxError

    use_stack(client, "fb-no-build", local_registry(plan))
    # Nothing to add to the parent image: ZenML would retag it and push it
    # with its engine's own login.
    no_build = settings(
        parent_image,
        "pipeline-no-build",
        allow_download_from_artifact_store=True,
    )
    with pytest.raises(FlavorboxError, match="around Flavorbox"):
        pipeline.with_options(settings=no_build)()
    results["no_build"] = f"{plan['uri']}/pipeline-no-build"
