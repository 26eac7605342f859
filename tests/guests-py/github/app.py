"""The `github` flavor in Python, for the conformance table: ghcr.io,
GHE.com and the legacy docker.pkg.github.com (guest-flavors/github)."""

import flavorbox_kit as kit

GHCR = "ghcr.io"
LEGACY = "docker.pkg.github.com"
EXAMPLE = "ghcr.io/my-organization"
LEGACY_EXAMPLE = "docker.pkg.github.com/my-organization/my-repository"
MAX_LOGIN_LEN = 39


def registry_of(host: str):
    if host == GHCR:
        return "ghcr"
    if host == LEGACY:
        return "legacy"
    if host.startswith("containers.") and host.endswith(".ghe.com"):
        sub = host[len("containers."):-len(".ghe.com")]
        if kit.is_dns_label(sub):
            return "ghe"
    return None


def web_host_hint(host: str) -> str:
    if host in ("github.com", "www.github.com"):
        return f"; `{host}` is GitHub's website, its container registry is `{GHCR}`"
    if host.endswith(".ghe.com"):
        sub = host[:-len(".ghe.com")]
        if sub != "containers" and kit.is_dns_label(sub):
            return f"; `{host}` is the GHE.com website, its container registry is `containers.{host}`"
    return ""


def check_login(login: str, lowercase_uri: str):
    if any("A" <= c <= "Z" for c in login):
        return f"the GitHub login `{login}` must be lowercase in an image path (`{lowercase_uri}`)"
    runs = login.split("-")
    valid = 1 <= len(login) <= MAX_LOGIN_LEN and all(
        run and all("a" <= c <= "z" or "0" <= c <= "9" for c in run) for run in runs)
    if valid:
        return None
    return (f"`{login}` is not a valid GitHub user or organization: use 1 to {MAX_LOGIN_LEN} "
            "lowercase letters and digits, optionally separated by single hyphens, not starting "
            "or ending with one")


def check_repository(repository: str, lowercase_uri: str):
    if any("A" <= c <= "Z" for c in repository):
        return (f"the repository `{repository}` must be lowercase in an image path "
                f"(`{lowercase_uri}`)")
    if kit.is_path_component(repository):
        return None
    return f"`{repository}` is not a valid repository in an image path: use {kit.PATH_COMPONENT_RULE}"


def check_uri(uri: kit.RegistryUri, issues) -> None:
    host = uri.host
    registry = registry_of(host)
    if registry is not None:
        if uri.port is not None:
            issues.append(kit.Issue.with_example(
                "uri", f"`uri` `{uri.uri}` must not include a port (`:{uri.port}`): GitHub's "
                f"registry is reached as `{host}`", EXAMPLE))
    else:
        issues.append(kit.Issue.with_example(
            "uri", f"`uri` `{uri.uri}` is not a GitHub Container Registry URI: its domain must be "
            f"`{GHCR}`, not `{uri.domain}` (or `containers.<subdomain>.ghe.com` for a GHE.com "
            f"enterprise, or the legacy `{LEGACY}`){web_host_hint(host)}", EXAMPLE))
        registry = "ghcr"
    example = {"ghcr": EXAMPLE, "ghe": f"{host}/my-organization", "legacy": LEGACY_EXAMPLE}[registry]
    host_name = {"ghcr": GHCR, "ghe": host, "legacy": LEGACY}[registry]
    if registry == "legacy":
        count, shape = 2, f"exactly an owner and a repository after `{LEGACY}`"
    else:
        count, shape = 1, f"exactly one GitHub user or organization after `{host_name}`"
    if not kit.expect_segments("uri", uri, count, count, shape, example, issues):
        return
    lowercase = f"{host_name}/{uri.path.lower()}"
    problem = check_login(uri.segments[0], lowercase)
    if problem:
        issues.append(kit.Issue.with_example("uri", problem, example))
    if registry == "legacy":
        problem = check_repository(uri.segments[1], lowercase)
        if problem:
            issues.append(kit.Issue.with_example("uri", problem, example))


class GitHub(kit.Flavor):
    def metadata(self):
        return kit.Metadata(
            name="github",
            display_name="GitHub Container Registry",
            description="GitHub Container Registry (Python).",
            docs_url="https://docs.zenml.io/stacks/stack-components/container-registries/github",
            config_schema=kit.config_schema(
                "GitHub container registry", "`ghcr.io/<user-or-org>`", [EXAMPLE]),
        )

    def validate_config(self, host, config):
        return kit.validate_uri_config(config, EXAMPLE, check_uri)

    def prepare_image_push(self, host, config, image):
        return kit.approve_push(host, "github", image)


Flavor = kit.export(GitHub)
