"""The `default` flavor in Python, for the conformance table: any registry URI
with a valid port and lowercase path components (guest-flavors/default)."""

import flavorbox_kit as kit

EXAMPLE = "registry.example.com/team"


def check_uri(uri: kit.RegistryUri, issues) -> None:
    port = uri.port
    if port is not None:
        problem = None
        if not port or not port.isdigit() or not port.isascii():
            problem = "is not a number"
        elif not 1 <= int(port) <= 65535:
            problem = "is not a TCP port (1 to 65535)"
        if problem:
            issues.append(kit.Issue.with_example(
                "uri", f"the port `{port}` of `uri` `{uri.uri}` {problem}", "localhost:5000"))
    kit.check_path_components("uri", uri, EXAMPLE, issues)


class Default(kit.Flavor):
    def metadata(self):
        return kit.Metadata(
            name="default",
            display_name="Default",
            description="Any Docker/OCI container registry reachable by URI (Python).",
            docs_url="https://docs.zenml.io/stacks/stack-components/container-registries/default",
            config_schema=kit.config_schema(
                "Default container registry", "Registry URI: `host[:port]` with an optional path.",
                ["localhost:5000", EXAMPLE]),
        )

    def validate_config(self, host, config):
        return kit.validate_uri_config(config, EXAMPLE, check_uri)

    def prepare_image_push(self, host, config, image):
        return kit.approve_push(host, "default", image)


Flavor = kit.export(Default)
