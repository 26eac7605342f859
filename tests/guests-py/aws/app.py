"""The `aws` flavor in Python, for the conformance table: Amazon ECR private
registries, the region derived from the URI, and a warning before a push to a
repository that does not exist (asked through `repository-exists`); the
rules of guest-flavors/aws."""

import json

import flavorbox_kit as kit

EXAMPLE = "715803424592.dkr.ecr.us-east-1.amazonaws.com"
EXAMPLE_ACCOUNT = "715803424592"
REGION_EXAMPLE = "us-east-1"
FIELDS = ("uri", "default_repository", "region")

# id, name, prefixes, pattern, example region
PARTITIONS = [
    ("aws", "commercial AWS", ("us", "eu", "ap", "sa", "ca", "me", "af", "il", "mx"),
     "`us-east-1`, `eu-central-1`, ...", "us-east-1"),
    ("aws-us-gov", "AWS GovCloud (US)", ("us-gov",), "`us-gov-...`", "us-gov-west-1"),
    ("aws-cn", "China", ("cn",), "`cn-...`", "cn-north-1"),
    ("aws-iso", "AWS ISO", ("us-iso",), "`us-iso-...`", "us-iso-east-1"),
    ("aws-iso-b", "AWS ISOB", ("us-isob",), "`us-isob-...`", "us-isob-east-1"),
    ("aws-iso-e", "AWS ISOE", ("eu-isoe",), "`eu-isoe-...`", "eu-isoe-west-1"),
    ("aws-iso-f", "AWS ISOF", ("us-isof",), "`us-isof-...`", "us-isof-south-1"),
    ("aws-eusc", "AWS European Sovereign Cloud", ("eusc-de",), "`eusc-de-...`", "eusc-de-east-1"),
]

# suffix, partitions, dual stack, services (preferred first; "dotted" or "dashed")
DOMAINS = [
    ("amazonaws.com", ("aws", "aws-us-gov"), False, ("dotted",)),
    ("amazonaws.com.cn", ("aws-cn",), False, ("dotted",)),
    ("on.aws", ("aws", "aws-us-gov"), True, ("dashed",)),
    ("on.amazonwebservices.com.cn", ("aws-cn",), True, ("dashed", "dotted")),
    ("amazonaws.eu", ("aws-eusc",), False, ("dotted",)),
    ("c2s.ic.gov", ("aws-iso",), False, ("dotted",)),
    ("sc2s.sgov.gov", ("aws-iso-b",), False, ("dotted",)),
    ("cloud.adc-e.uk", ("aws-iso-e",), False, ("dotted",)),
    ("csp.hci.ic.gov", ("aws-iso-f",), False, ("dotted",)),
]

FIPS_REGIONS = ("us-east-1", "us-east-2", "us-west-1", "us-west-2", "us-gov-east-1", "us-gov-west-1")
ECR_PUBLIC_HOSTS = ("public.ecr.aws", "ecr-public.aws.com")


def label(service: str, fips: bool) -> str:
    base = "dkr.ecr" if service == "dotted" else "dkr-ecr"
    return base + ("-fips" if fips else "")


class Refusal(Exception):
    def __init__(self, problem: str, example: str):
        super().__init__(problem)
        self.problem = problem
        self.example = example


def is_account(s: str) -> bool:
    return len(s) == 12 and all("0" <= c <= "9" for c in s)


def partition_of(s: str):
    parts = s.rsplit("-", 2)
    if len(parts) != 3:
        return None
    prefix, word, number = parts
    if not (number and all("0" <= c <= "9" for c in number)
            and word and all("a" <= c <= "z" for c in word)):
        return None
    for p in PARTITIONS:
        if prefix in p[2]:
            return p
    return None


def partition_by_id(pid):
    return next(p for p in PARTITIONS if p[0] == pid)


def domain_example(domain) -> str:
    region = partition_by_id(domain[1][0])[4]
    return f"{EXAMPLE_ACCOUNT}.{label(domain[3][0], False)}.{region}.{domain[0]}"


def domain_of(partition, dual_stack: bool):
    serving = [d for d in DOMAINS if partition[0] in d[1]]
    for d in serving:
        if d[2] == dual_stack:
            return d
    for d in serving:
        if not d[2]:
            return d
    return None


def suggestion(account, partition, region, dual_stack, fips) -> str:
    account = account if is_account(account) else EXAMPLE_ACCOUNT
    fips = fips and region in FIPS_REGIONS
    domain = domain_of(partition, dual_stack)
    if domain is None:
        return EXAMPLE
    return f"{account}.{label(domain[3][0], fips)}.{region}.{domain[0]}"


def wrong_service(domain, service, fips) -> str:
    given = label(service, fips)
    expected = label(domain[3][0], fips)
    if domain[2]:
        return (f"`.{domain[0]}` is a dual-stack domain, where the service label is `{expected}`, "
                f"not `{given}`")
    return (f"`{given}` is the dual-stack service label, used with `.on.aws` (and "
            f"`.on.amazonwebservices.com.cn` in China); with `.{domain[0]}` it is `{expected}`")


def wrong_partition(domain, partition, region) -> str:
    parts = [partition_by_id(pid) for pid in domain[1]]
    only_for = (f"`.{domain[0]}` is only for the {' and '.join(p[1] for p in parts)} regions "
                f"({'; '.join(p[3] for p in parts)})")
    right = domain_of(partition, domain[2])
    if right is None:
        return only_for
    if right[2] == domain[2]:
        return f"{only_for}; the {partition[1]} region `{region}` is served from `.{right[0]}`"
    return (f"{only_for}; the {partition[1]} region `{region}` has no dual-stack ECR domain: use "
            f"`{label(right[3][0], False)}` with `.{right[0]}`")


FORMS = ("`<account>.dkr.ecr.<region>.amazonaws.com` (commercial regions and GovCloud), "
         "`<account>.dkr.ecr-fips.<region>.amazonaws.com` (FIPS, in us-east-1, us-east-2, "
         "us-west-1, us-west-2, us-gov-east-1, us-gov-west-1), "
         "`<account>.dkr-ecr[-fips].<region>.on.aws` (dual-stack), "
         "`<account>.dkr.ecr.<cn-region>.amazonaws.com.cn` (China), "
         "`<account>.dkr.ecr.<cn-region>.on.amazonwebservices.com.cn` or "
         "`<account>.dkr-ecr.<cn-region>.on.amazonwebservices.com.cn` (China dual-stack), "
         "`<account>.dkr.ecr.<eusc-region>.amazonaws.eu` (European Sovereign Cloud) and "
         "`<account>.dkr.ecr.<iso-region>.c2s.ic.gov`, `.sc2s.sgov.gov`, `.cloud.adc-e.uk` or "
         "`.csp.hci.ic.gov` (ISO regions)")


def not_ecr(host: str) -> Refusal:
    best = None
    for d in DOMAINS:
        needle = f".{d[0]}."
        i = host.find(needle)
        if i >= 0 and (best is None or len(d[0]) >= len(best[0][0])):
            best = (d, host[i + len(needle) - 1:])
    if best is not None:
        domain, tail = best
        return Refusal(f"`{host}` is not an Amazon ECR registry: the host must end in "
                       f"`.{domain[0]}`, but `{tail}` follows it", domain_example(domain))
    return Refusal(f"`{host}` is not an Amazon ECR registry: it must be one of {FORMS}", EXAMPLE)


def parse_host(host: str) -> str:
    found = None
    for d in DOMAINS:
        if host.endswith("." + d[0]):
            found = (d, host[:-len(d[0]) - 1])
            break
    if found is None:
        raise not_ecr(host)
    domain, rest = found
    parts = rest.split(".")
    shapes = {
        ("dkr", "ecr"): ("dotted", False), ("dkr", "ecr-fips"): ("dotted", True),
        ("dkr-ecr",): ("dashed", False), ("dkr-ecr-fips",): ("dashed", True),
    }
    shape = shapes.get(tuple(parts[1:-1])) if len(parts) in (3, 4) else None
    if shape is None:
        raise Refusal(f"`{host}` is not an Amazon ECR registry: before `.{domain[0]}` it must be "
                      f"`<12-digit account id>.{label(domain[3][0], False)}.<region>`, not `{rest}`",
                      domain_example(domain))
    account, region = parts[0], parts[-1]
    service, fips = shape
    problems = []
    if not account:
        problems.append("the 12-digit AWS account id is missing")
    elif not is_account(account):
        problems.append(f"`{account}` is not a 12-digit AWS account id")
    if service not in domain[3]:
        problems.append(wrong_service(domain, service, fips))
    partition = partition_of(region)
    if partition is None:
        problems.append(f"`{region}` is not an AWS region (such as `us-east-1`, `us-gov-west-1`, "
                        "`cn-north-1` or `eusc-de-east-1`)")
    elif partition[0] not in domain[1]:
        problems.append(wrong_partition(domain, partition, region))
    if fips and partition is not None and region not in FIPS_REGIONS:
        problems.append(f"Amazon ECR offers no FIPS endpoint in `{region}` (only in "
                        f"{', '.join(FIPS_REGIONS)}): use `{label(service, False)}` instead of "
                        f"`{label(service, True)}`")
    if not problems:
        return region
    if partition is not None:
        example = suggestion(account, partition, region, domain[2] or service == "dashed", fips)
    else:
        example = domain_example(domain)
    raise Refusal(f"`uri` `{host}` is not a valid Amazon ECR registry: {'; '.join(problems)}",
                  example)


def parse_domain(uri: kit.RegistryUri) -> str:
    port = uri.port
    if port is not None:
        host = uri.host
        try:
            parse_host(host)
            example = host
        except Refusal as refusal:
            example = refusal.example
        raise Refusal(f"`uri` `{uri.domain}` must not have a port (`:{port}`)", example)
    return parse_host(uri.host)


def ecr_public_note(host: str) -> str:
    return (f"`{host}` is Amazon ECR Public, which is not a private registry: the `aws` flavor "
            "takes ECR private registries only (`<account>.dkr.ecr.<region>.amazonaws.com`); use "
            "the `default` flavor for ECR Public (e.g. `public.ecr.aws/<alias>`)")


def check_uri(uri: kit.RegistryUri, issues):
    public = uri.host in ECR_PUBLIC_HOSTS
    if uri.segments:
        message = f"Property `uri` can not contain a `/`. An example of a valid URI is: `{EXAMPLE}`"
        if public:
            message += ". " + ecr_public_note(uri.host)
        issues.append(kit.Issue("uri", message))
        if public:
            return None
    elif public:
        issues.append(kit.Issue.with_example("uri", ecr_public_note(uri.host), EXAMPLE))
        return None
    try:
        region = parse_domain(uri)
    except Refusal as refusal:
        issues.append(kit.Issue.with_example("uri", refusal.problem, refusal.example))
        return None
    return region if not uri.segments else None


class Aws(kit.Flavor):
    def metadata(self):
        return kit.Metadata(
            name="aws",
            display_name="Amazon Elastic Container Registry (ECR)",
            description=f"Amazon ECR private registries: {FORMS} (Python).",
            docs_url="https://docs.zenml.io/stacks/stack-components/container-registries/aws",
            config_schema=kit.config_schema(
                "Amazon ECR container registry", "The ECR private registry, without any `/`.",
                [EXAMPLE], {"region": {"type": "string", "examples": [REGION_EXAMPLE]}}),
            capabilities=[kit.REPOSITORY_EXISTS],
        )

    def validate_config(self, host, config):
        cfg = kit.ConfigCheck(config, FIELDS)
        uri = cfg.uri(EXAMPLE)
        derived = check_uri(uri, cfg.issues) if uri is not None else None
        repository = cfg.default_repository(None)
        if repository is not None and len(repository) < 2:
            cfg.issue("default_repository",
                      f"`default_repository` `{repository}` is too short: Amazon ECR repository "
                      "names have at least 2 characters", kit.REPOSITORY_EXAMPLE)
        given = cfg.optional_str("region", REGION_EXAMPLE)
        if given is not None and derived is not None and given != derived:
            cfg.issue("region",
                      f"`region` `{given}` does not match the region of `uri`, `{derived}`: remove "
                      f"`region` (it is derived from `uri`) or set it to `{derived}`", derived)
        elif given is not None and derived is None and partition_of(given) is None:
            cfg.issue("region", f"`region` `{given}` is not an AWS region", REGION_EXAMPLE)
        if derived is not None:
            cfg.set("region", derived)
        return cfg.finish()

    def prepare_image_push(self, host, config, image):
        try:
            fields = json.loads(config)
            if not isinstance(fields, dict):
                fields = {}
        except ValueError:
            fields = {}
        uri = fields.get("uri") if isinstance(fields.get("uri"), str) else image.domain
        region = fields.get("region") if isinstance(fields.get("region"), str) else None
        if region is None:
            try:
                region = parse_domain(kit.RegistryUri(uri))
            except Refusal:
                region = None
        repository = image.path
        try:
            exists = host.repository_exists(repository)
        except kit.LookupFailed as e:
            reason = str(e)
            host.log("info", f"could not check whether repository `{repository}` exists on "
                             f"`{uri}`: {reason}")
            return kit.Approve([
                f"Could not check whether Amazon ECR repository `{repository}` exists on `{uri}`: "
                f"{reason}. If it does not exist, the push will fail."])
        if exists:
            host.log("info", f"repository `{repository}` exists on `{uri}`")
            return kit.Approve([])
        host.log("info", f"repository `{repository}` does not exist on `{uri}`; pushing anyway")
        region_arg = f" --region {region}" if region else ""
        return kit.Approve([
            f"Amazon ECR repository `{repository}` does not exist on `{uri}`. ECR needs a "
            f"repository to be created before images are pushed to it, e.g. with "
            f"`aws ecr create-repository --repository-name {repository}{region_arg}`. "
            "The push will probably fail."])


Flavor = kit.export(Aws)
