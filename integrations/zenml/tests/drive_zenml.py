"""Drives ZenML's own client through the `flavorbox` container-registry
flavor, in one process (each `zenml` CLI call pays seconds of imports).

Run by tests/tests/all/zenml.rs with ZenML's config in a temporary directory and
`integrations/zenml` on PYTHONPATH. Reads a JSON plan from argv[1] and prints
one JSON document: what each step returned or raised.

    plan = {
      "local":  {"uri", "component", "home", "image", "outside", "denied": {"component", "image"},
                 "policy": {"component", "bad", "good"},
                 "rules": {"component", "denied": {rule: image}, "good"}},
      "server": {"uri", "component", "url", "token", "image",
                 "policy": {"component", "bad", "good"}},
      "builder": {"image", "outside", "engine_image"},
    }

`builder`: the `flavorbox` image builder in a stack with the local registry
builds (FROM scratch, nothing pulled) and pushes `image`, and refuses
`outside`; ZenML's container engine, pushing by itself, is refused for
`outside` and for `engine_image` (an image in the engine, inside the
registry).

`policy` is a registry component of the built-in `policy` flavor and two
images in the engine, one that breaks its rules and one that meets them:
ZenML's `prepare_image_push` and `push_image` on each.
"""

import json
import sys
import traceback

from zenml.client import Client
from zenml.enums import StackComponentType

REGISTRY = StackComponentType.CONTAINER_REGISTRY


def attempt(step):
    try:
        return {"ok": step()}
    except Exception as e:  # noqa: BLE001 - the test asserts on what was raised
        return {"error": type(e).__name__, "message": str(e), "trace": traceback.format_exc()}


def use_registry(client, name, configuration):
    """Registers a container registry of flavor `flavorbox` and a stack using
    it, activates the stack, and returns ZenML's own registry object."""
    client.create_stack_component(
        name=name, flavor="flavorbox", component_type=REGISTRY, configuration=configuration
    )
    client.create_stack(
        name=f"stack-{name}",
        components={
            StackComponentType.ORCHESTRATOR: "default",
            StackComponentType.ARTIFACT_STORE: "default",
            REGISTRY: name,
        },
    )
    client.activate_stack(f"stack-{name}")
    return Client().active_stack.container_registry


def images_through(out, prefix, registry, policy):
    """ZenML's two calls on the image that breaks the policy and the one that
    meets it, in the order ZenML's image builders make them."""
    for which in ("bad", "good"):
        image = policy[which]
        out[f"{prefix}_{which}_prepare"] = attempt(lambda: registry.prepare_image_push(image))
        out[f"{prefix}_{which}_push"] = attempt(lambda: registry.push_image(image))


def drive_builder(client, out, built, local):
    """The image builder and ZenML's container engine against the local registry."""
    from zenml.container_engines import get_container_engine
    from zenml.image_builders import BuildContext

    builder_type = StackComponentType.IMAGE_BUILDER
    flavor = client.create_flavor(
        source="flavorbox_zenml.FlavorboxImageBuilderFlavor", component_type=builder_type
    )
    out["builder_flavor"] = flavor.name
    client.create_stack_component(
        name="fb-builder", flavor="flavorbox", component_type=builder_type, configuration={}
    )
    client.create_stack(
        name="stack-built",
        components={
            StackComponentType.ORCHESTRATOR: "default",
            StackComponentType.ARTIFACT_STORE: "default",
            REGISTRY: "local",
            builder_type: "fb-builder",
        },
    )
    client.activate_stack("stack-built")
    stack = Client().active_stack
    builder, registry = stack.image_builder, stack.container_registry
    out["builder_type"] = type(builder).__name__

    def context():
        build_context = BuildContext()
        build_context.add_file("FROM scratch\nCOPY hello.txt /hello.txt\n", "Dockerfile")
        build_context.add_file("built by ZenML, pushed through Flavorbox\n", "hello.txt")
        return build_context

    out["builder_push"] = attempt(lambda: builder.build(built["image"], context(), None, registry))
    out["builder_outside"] = attempt(
        lambda: builder.build(built["outside"], context(), None, registry)
    )
    engine = get_container_engine()
    out["engine_outside"] = attempt(lambda: engine.push_image(local["outside"], registry))
    out["engine_inside"] = attempt(lambda: engine.push_image(built["engine_image"], registry))


def main():
    plan = json.loads(sys.argv[1])
    out = {}
    Client.initialize()  # `zenml init` here: .zen/ and ZenML's local SQLite store
    client = Client()
    flavor = client.create_flavor(
        source="flavorbox_zenml.FlavorboxContainerRegistryFlavor",
        component_type=REGISTRY,
    )
    out["flavor"] = {"name": flavor.name, "source": flavor.source}

    # ZenML's pydantic validation of the flavor's config.
    out["missing_component"] = attempt(
        lambda: client.create_stack_component(
            name="no-component",
            flavor="flavorbox",
            component_type=REGISTRY,
            configuration={"uri": plan["local"]["uri"]},
        ).name
    )
    out["bad_component"] = attempt(
        lambda: client.create_stack_component(
            name="bad-component",
            flavor="flavorbox",
            component_type=REGISTRY,
            configuration={"uri": plan["local"]["uri"], "component": "not a name!"},
        ).name
    )

    local = plan["local"]
    registry = use_registry(
        client,
        "local",
        {"uri": local["uri"], "component": local["component"], "flavorbox_home": local["home"]},
    )
    out["local_type"] = type(registry).__name__
    out["local_push"] = attempt(lambda: registry.push_image(local["image"]))
    out["outside_push"] = attempt(lambda: registry.push_image(local["outside"]))
    out["outside_prepare"] = attempt(lambda: registry.prepare_image_push(local["outside"]))

    denied = local["denied"]
    strict = use_registry(
        client,
        "strict",
        {"uri": local["uri"], "component": denied["component"], "flavorbox_home": local["home"]},
    )
    out["denied_prepare"] = attempt(lambda: strict.prepare_image_push(denied["image"]))
    out["denied_push"] = attempt(lambda: strict.push_image(denied["image"]))

    policy = local["policy"]
    guarded = use_registry(
        client,
        "guarded",
        {"uri": local["uri"], "component": policy["component"], "flavorbox_home": local["home"]},
    )
    images_through(out, "local_policy", guarded, policy)

    # One image per rule of a stricter component, each breaking only that
    # rule, and one that keeps them all: ZenML's `prepare_image_push` on each.
    rules = local["rules"]
    ruled = use_registry(
        client,
        "ruled",
        {"uri": local["uri"], "component": rules["component"], "flavorbox_home": local["home"]},
    )
    for rule, image in rules["denied"].items():
        out[f"rule_{rule}"] = attempt(lambda image=image: ruled.prepare_image_push(image))
    out["rules_kept"] = attempt(lambda: ruled.prepare_image_push(rules["good"]))

    built = plan.get("builder")
    if built:
        drive_builder(client, out, built, local)

    server = plan.get("server")
    if server:
        # The tenant token lives in a ZenML secret; the component refers to it.
        client.create_secret(name="flavorbox", values={"token": server["token"]})
        remote = use_registry(
            client,
            "remote",
            {
                "uri": server["uri"],
                "component": server["component"],
                "server_url": server["url"],
                "token": "{{flavorbox.token}}",
            },
        )
        stored = client.get_stack_component(REGISTRY, "remote").configuration
        out["stored_token"] = stored.get("token")
        out["server_push"] = attempt(lambda: remote.push_image(server["image"]))
        policy = server["policy"]
        remote_guarded = use_registry(
            client,
            "remote-guarded",
            {
                "uri": server["uri"],
                "component": policy["component"],
                "server_url": server["url"],
                "token": "{{flavorbox.token}}",
            },
        )
        images_through(out, "server_policy", remote_guarded, policy)

    print(json.dumps(out))


if __name__ == "__main__":
    main()
