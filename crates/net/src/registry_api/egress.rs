//! The egress policy: where the host's own HTTP may go, and for how long.
//!
//! Registry URIs are chosen by users (and, on the server, by tenants), so a
//! `repository-exists` lookup is a request the host makes to an address
//! someone else picked. Which addresses are acceptable is the operator's
//! decision, taken once and injected into the client as one value: the CLI
//! allows everything (the user's own machine and network), the multi-tenant
//! server allows only public addresses plus an allowlist. The rules here are
//! pure functions, checked after name resolution on the addresses the
//! connection will actually use, so they are table-tested without a network.
//!
//! An allowlist entry may name a path (`registry.internal:5000/team-a`): the
//! exception then covers only registry namespaces inside that path, segment
//! by segment. Which entries apply is the caller's choice: the server gives
//! each tenant a policy of the server-wide entries and its own
//! ([`EgressPolicy::with_allowed`]), so one tenant's exception never opens a
//! registry, or a path on it, to another.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use flavorbox_grammar::RegistryUri;

/// Everything that bounds the host's outgoing HTTP: addresses, redirects, timeouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressPolicy {
    /// Which resolved addresses a connection may go to.
    pub addresses: AddressFilter,
    /// Which redirects are followed.
    pub redirects: RedirectRule,
    /// How long connecting and a whole exchange may take.
    pub timeouts: Timeouts,
}

impl EgressPolicy {
    /// The CLI's policy: any address, same-origin redirects, default timeouts.
    pub fn allow_all() -> EgressPolicy {
        EgressPolicy {
            addresses: AddressFilter::AllowAll,
            redirects: RedirectRule::default(),
            timeouts: Timeouts::default(),
        }
    }

    /// A shared server's policy: public addresses only, except the `allow`ed hosts.
    pub fn public_only(allow: Vec<AllowedHost>) -> EgressPolicy {
        EgressPolicy {
            addresses: AddressFilter::PublicOnly { allow },
            redirects: RedirectRule::default(),
            timeouts: Timeouts::default(),
        }
    }

    /// This policy with `more` allowlist entries (one tenant's own); a
    /// policy that allows every address stays as it is.
    pub fn with_allowed(&self, more: &[AllowedHost]) -> EgressPolicy {
        let mut policy = self.clone();
        if let AddressFilter::PublicOnly { allow } = &mut policy.addresses {
            allow.extend_from_slice(more);
        }
        policy
    }
}

impl Default for EgressPolicy {
    fn default() -> Self {
        EgressPolicy::allow_all()
    }
}

/// Which addresses a connection may go to, judged after name resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressFilter {
    /// Any address (today's CLI: the registry may be on loopback or the LAN).
    AllowAll,
    /// Only public unicast addresses, except connections to an allowlisted host[:port].
    PublicOnly {
        /// Hosts the operator allows whatever they resolve to.
        allow: Vec<AllowedHost>,
    },
}

/// An operator-allowlisted `host[:port][/path]`; without a port, every port
/// of the host; without a path, every namespace on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    host: HostName,
    port: Option<u16>,
    /// The entry as a registry uri, kept when it has a path (whose
    /// namespaces alone the entry covers).
    namespace: Option<RegistryUri>,
}

/// Where a registry's requests go: its host, compared the way a URL names
/// it, and the port connected to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    host: HostName,
    port: u16,
}

impl Endpoint {
    /// The endpoint of `host` (as a URL names it, an IPv6 address in brackets or not) and `port`.
    pub fn new(host: &str, port: u16) -> Endpoint {
        Endpoint {
            host: HostName::new(host),
            port,
        }
    }

    /// Where the host's requests for `registry` go: Docker Hub's API host
    /// for `docker.io`, port 80 on loopback and 443 elsewhere unless named.
    pub fn of(registry: &RegistryUri) -> Option<Endpoint> {
        let url = super::api_url(registry, "v2/").ok()?;
        Some(Endpoint::new(url.host_str()?, url.port_or_known_default()?))
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.host {
            HostName::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            HostName::Ip(IpAddr::V4(ip)) => write!(f, "{ip}:{}", self.port),
            HostName::Name(name) => write!(f, "{name}:{}", self.port),
        }
    }
}

/// Whether two registry uris name overlapping namespaces of one registry:
/// the same endpoint, and one's path contains the other's, segment by
/// segment (`host/team-a` overlaps `host/team-a/sub` and `host`, not
/// `host/team-a-evil`). Two names of one machine (`localhost` and
/// `127.0.0.1`) are different endpoints here.
pub fn overlap(a: &RegistryUri, b: &RegistryUri) -> bool {
    let same_registry = match (Endpoint::of(a), Endpoint::of(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    };
    same_registry && (a.contains_namespace(b.path()) || b.contains_namespace(a.path()))
}

/// A host compared the way a URL names it: IP addresses by value, names case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostName {
    Ip(IpAddr),
    Name(String),
}

impl HostName {
    fn new(host: &str) -> HostName {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        match bare.parse::<IpAddr>() {
            Ok(ip) => HostName::Ip(ip),
            Err(_) => HostName::Name(host.to_ascii_lowercase()),
        }
    }
}

/// Why an egress setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressConfigError {
    /// An allowlist entry is not `host[:port][/path]`.
    #[error(
        "egress allowlist entry `{entry}` is not host[:port][/path] (like `registry.internal:5000`, `registry.internal:5000/team-a` or `[fd00::1]:443`){}",
        reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default()
    )]
    InvalidAllowedHost {
        /// The entry as given.
        entry: String,
        /// What the registry uri grammar found wrong, if it was that.
        reason: Option<String>,
    },
}

impl AllowedHost {
    /// Parses `host[:port][/path]` with the registry uri grammar (an IPv6
    /// host in brackets; a lowercase path of `/`-separated components).
    pub fn parse(entry: &str) -> Result<AllowedHost, EgressConfigError> {
        let invalid = |reason: Option<String>| EgressConfigError::InvalidAllowedHost {
            entry: entry.chars().take(300).collect(),
            reason,
        };
        let uri = RegistryUri::parse(entry).map_err(|e| invalid(Some(e.to_string())))?;
        if entry.ends_with('/') {
            return Err(invalid(Some("remove the trailing `/`".into())));
        }
        let port = match uri.domain().len() > uri.host().len() {
            true => Some(uri.port().ok_or_else(|| invalid(None))?),
            false => None,
        };
        Ok(AllowedHost {
            host: HostName::new(uri.host()),
            port,
            namespace: uri.path().is_some().then_some(uri),
        })
    }

    /// The path this entry is limited to, as a registry uri; `None`: every path.
    pub fn namespace(&self) -> Option<&RegistryUri> {
        self.namespace.as_ref()
    }

    /// Whether a connection to `host` (as a URL names it) on `port` is this entry.
    fn matches(&self, host: &str, port: u16) -> bool {
        self.matches_endpoint(&Endpoint::new(host, port))
    }

    /// Whether `endpoint` is this entry's host (and port, if it names one).
    fn matches_endpoint(&self, endpoint: &Endpoint) -> bool {
        self.host == endpoint.host && self.port.is_none_or(|p| p == endpoint.port)
    }

    /// Whether this entry covers `namespace` (`None`: the whole registry).
    fn covers(&self, namespace: Option<&str>) -> bool {
        self.namespace
            .as_ref()
            .is_none_or(|uri| uri.contains_namespace(namespace))
    }
}

impl std::fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(uri) = &self.namespace {
            return write!(f, "{uri}");
        }
        match (&self.host, self.port) {
            (HostName::Ip(IpAddr::V6(ip)), Some(port)) => write!(f, "[{ip}]:{port}"),
            (HostName::Ip(IpAddr::V6(ip)), None) => write!(f, "[{ip}]"),
            (HostName::Ip(IpAddr::V4(ip)), Some(port)) => write!(f, "{ip}:{port}"),
            (HostName::Ip(IpAddr::V4(ip)), None) => write!(f, "{ip}"),
            (HostName::Name(name), Some(port)) => write!(f, "{name}:{port}"),
            (HostName::Name(name), None) => write!(f, "{name}"),
        }
    }
}

/// A registry namespace outside every allowlist entry that names its registry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{target}` is outside the paths allowlisted on {endpoint} ({}): the operator's `allow_registry` entries for this registry do not cover it",
    allowed.join(", ")
)]
pub struct NamespaceDenied {
    /// The registry uri or repository asked for.
    pub target: String,
    /// The registry's endpoint.
    pub endpoint: String,
    /// The entries naming that endpoint, each with its path.
    pub allowed: Vec<String>,
}

/// A connection the address filter refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "egress to {host}:{port} refused: it resolves to {address} ({reason}), which the egress policy does not allow"
)]
pub struct EgressDenied {
    /// The host as the URL named it.
    pub host: String,
    /// The port connected to.
    pub port: u16,
    /// The first refused address.
    pub address: IpAddr,
    /// What kind of address it is.
    pub reason: &'static str,
}

impl AddressFilter {
    /// Whether an allowlist entry names `endpoint`, so that the entries,
    /// not the public-address rule, decide where it may go.
    pub fn allowlists(&self, endpoint: &Endpoint) -> bool {
        match self {
            AddressFilter::AllowAll => false,
            AddressFilter::PublicOnly { allow } => {
                allow.iter().any(|a| a.matches_endpoint(endpoint))
            }
        }
    }

    /// Refuses `namespace` (a repository path or a registry uri's path;
    /// `None`: the whole registry) on `endpoint` when entries name the
    /// endpoint but none of them covers it. A registry no entry names is
    /// left to the address check. `target` is what the error quotes.
    pub fn check_namespace(
        &self,
        endpoint: &Endpoint,
        namespace: Option<&str>,
        target: &str,
    ) -> Result<(), NamespaceDenied> {
        let AddressFilter::PublicOnly { allow } = self else {
            return Ok(());
        };
        let naming: Vec<&AllowedHost> = allow
            .iter()
            .filter(|a| a.matches_endpoint(endpoint))
            .collect();
        if naming.is_empty() || naming.iter().any(|a| a.covers(namespace)) {
            return Ok(());
        }
        Err(NamespaceDenied {
            target: target.chars().take(300).collect(),
            endpoint: endpoint.to_string(),
            allowed: naming.iter().map(|a| a.to_string()).collect(),
        })
    }

    /// The addresses of `host:port` a connection may use; refused when none is left.
    pub fn check(
        &self,
        host: &str,
        port: u16,
        resolved: Vec<SocketAddr>,
    ) -> Result<Vec<SocketAddr>, EgressDenied> {
        let allow = match self {
            AddressFilter::AllowAll => return Ok(resolved),
            AddressFilter::PublicOnly { allow } => allow,
        };
        if allow.iter().any(|a| a.matches(host, port)) {
            return Ok(resolved);
        }
        let mut first_refused = None;
        let kept: Vec<SocketAddr> = resolved
            .into_iter()
            .filter(|addr| match non_public(addr.ip()) {
                None => true,
                Some(reason) => {
                    first_refused.get_or_insert((addr.ip(), reason));
                    false
                }
            })
            .collect();
        match (kept.is_empty(), first_refused) {
            (true, Some((address, reason))) => Err(EgressDenied {
                host: host.to_string(),
                port,
                address,
                reason,
            }),
            _ => Ok(kept),
        }
    }
}

/// What kind of non-public address `ip` is, or `None` for a public unicast address.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

/// IPv4 ranges that are not public unicast (IANA special-purpose registry).
const V4_RANGES: &[([u8; 4], u8, &str)] = &[
    ([0, 0, 0, 0], 8, "unspecified (\"this network\")"),
    ([10, 0, 0, 0], 8, "private"),
    (
        [100, 64, 0, 0],
        10,
        "shared address space (carrier-grade NAT)",
    ),
    ([127, 0, 0, 0], 8, "loopback"),
    ([169, 254, 0, 0], 16, "link-local"),
    ([172, 16, 0, 0], 12, "private"),
    ([192, 0, 0, 0], 24, "IETF protocol assignments"),
    ([192, 0, 2, 0], 24, "documentation"),
    ([192, 88, 99, 0], 24, "6to4 relay anycast"),
    ([192, 168, 0, 0], 16, "private"),
    ([198, 18, 0, 0], 15, "benchmarking"),
    ([198, 51, 100, 0], 24, "documentation"),
    ([203, 0, 113, 0], 24, "documentation"),
    ([224, 0, 0, 0], 4, "multicast"),
    ([240, 0, 0, 0], 4, "reserved or broadcast"),
];

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let bits = u32::from(ip);
    V4_RANGES.iter().find_map(|(net, len, reason)| {
        let mask = u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
        (bits & mask == u32::from_be_bytes(*net) & mask).then_some(*reason)
    })
}

/// IPv6 ranges inside global unicast (2000::/3) that are not public.
const V6_RANGES: &[(u128, u8, &str)] = &[
    (0x2001_0000 << 96, 32, "Teredo"),
    (0x2001_0002 << 96, 48, "benchmarking"),
    (0x2001_0db8 << 96, 32, "documentation"),
    (0x3fff << 112, 20, "documentation"),
];

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let bits = u128::from(ip);
    let in_range = |net: u128, len: u8| {
        let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
        bits & mask == net & mask
    };
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    if ip.to_ipv4_mapped().is_some() {
        return Some("IPv4-mapped");
    }
    if in_range(0, 96) {
        return Some("IPv4-compatible (deprecated)");
    }
    // NAT64 (64:ff9b::/96) reaches the IPv4 address in its low 32 bits.
    if in_range(0x0064_ff9b << 96, 96) {
        let embedded = Ipv4Addr::from(bits as u32);
        return non_public_v4(embedded).map(|_| "NAT64 of a non-public IPv4 address");
    }
    // 6to4 (2002::/16) reaches the IPv4 address in bits 16..48.
    if in_range(0x2002 << 112, 16) {
        let embedded = Ipv4Addr::from((bits >> 80) as u32);
        return non_public_v4(embedded).map(|_| "6to4 of a non-public IPv4 address");
    }
    if ip.is_unique_local() {
        return Some("unique local");
    }
    if ip.is_unicast_link_local() {
        return Some("link-local");
    }
    if ip.is_multicast() {
        return Some("multicast");
    }
    if !in_range(0x2000 << 112, 3) {
        return Some("not global unicast");
    }
    V6_RANGES
        .iter()
        .find_map(|(net, len, reason)| in_range(*net, *len).then_some(*reason))
}

/// Which redirects the client follows. A redirected request never carries
/// the `Authorization` header, whatever the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectRule {
    /// Never follow: a redirect is refused like a denied address.
    Refuse,
    /// Follow at most `max` redirects, each to the same scheme, host and port.
    SameOrigin {
        /// The most redirects one request follows.
        max: u8,
    },
}

impl Default for RedirectRule {
    fn default() -> Self {
        RedirectRule::SameOrigin { max: 3 }
    }
}

/// A redirect the rule does not follow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectRefused {
    /// The rule follows no redirects at all.
    #[error("redirects are not followed")]
    NotFollowed,
    /// The redirect goes to another scheme, host or port.
    #[error("redirect from {from} to another origin {to} is not followed")]
    OtherOrigin {
        /// `scheme://host:port` redirected from.
        from: String,
        /// `scheme://host:port` redirected to.
        to: String,
    },
    /// More redirects than the rule allows.
    #[error("more than {max} redirects")]
    TooMany {
        /// The rule's limit.
        max: u8,
    },
}

impl RedirectRule {
    /// Whether redirect number `hop` (1 for the first) from `from` to `to` is followed.
    pub fn check(&self, from: &url::Url, to: &url::Url, hop: u32) -> Result<(), RedirectRefused> {
        let max = match self {
            RedirectRule::Refuse => return Err(RedirectRefused::NotFollowed),
            RedirectRule::SameOrigin { max } => *max,
        };
        if hop > u32::from(max) {
            return Err(RedirectRefused::TooMany { max });
        }
        let (a, b) = (origin(from), origin(to));
        if a != b {
            return Err(RedirectRefused::OtherOrigin { from: a, to: b });
        }
        Ok(())
    }
}

/// `scheme://host:port` of a URL, with the scheme's default port made explicit.
fn origin(url: &url::Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}

/// How long the client waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Longest wait for one TCP connection to open.
    pub connect: Duration,
    /// Longest whole exchange (name resolution, token and redirects included);
    /// a caller's shorter deadline wins.
    pub exchange: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            exchange: Duration::from_secs(30),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_public_addresses_are_classified_and_public_ones_pass() {
        let denied = [
            "127.0.0.1",
            "127.255.255.254",
            "::1",
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "fe80::1",
            "febf::1",
            "fc00::1",
            "fd12:3456::1",
            "0.0.0.0",
            "0.1.2.3",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:8.8.8.8",
            "::127.0.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "240.0.0.1",
            "ff02::1",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "192.0.0.8",
            "2001:db8::1",
            "2001::1",
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "2002:7f00:1::1",
            "2002:c0a8:101::1",
            "fec0::1",
            "100::1",
            "3fff::1",
        ];
        for ip in denied {
            let parsed: IpAddr = ip.parse().expect(ip);
            assert!(non_public(parsed).is_some(), "{ip} should be refused");
        }
        let allowed = [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.0.1",
            "192.169.0.1",
            "11.0.0.1",
            "126.255.255.255",
            "128.0.0.1",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "2001:4860:4860::8888",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ];
        for ip in allowed {
            let parsed: IpAddr = ip.parse().expect(ip);
            assert_eq!(non_public(parsed), None, "{ip} should be allowed");
        }
    }

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter()
            .map(|a| a.parse().expect("socket address"))
            .collect()
    }

    #[test]
    fn allow_all_passes_every_address() {
        let all = addrs(&["127.0.0.1:5000", "[::1]:5000", "10.0.0.1:5000"]);
        assert_eq!(
            AddressFilter::AllowAll.check("localhost", 5000, all.clone()),
            Ok(all)
        );
    }

    #[test]
    fn public_only_keeps_public_addresses_and_refuses_when_none_is_left() {
        let filter = AddressFilter::PublicOnly { allow: Vec::new() };
        let mixed = addrs(&["127.0.0.1:443", "93.184.216.34:443", "[::1]:443"]);
        assert_eq!(
            filter.check("rebind.example", 443, mixed),
            Ok(addrs(&["93.184.216.34:443"]))
        );
        let private = addrs(&["10.1.2.3:443", "[fd00::1]:443"]);
        let refused = filter.check("intranet.example", 443, private);
        assert_eq!(
            refused,
            Err(EgressDenied {
                host: "intranet.example".into(),
                port: 443,
                address: "10.1.2.3".parse().expect("ip"),
                reason: "private",
            })
        );
        assert!(
            filter
                .check("localhost", 5000, addrs(&["127.0.0.1:5000"]))
                .is_err()
        );
    }

    #[test]
    fn allowlisted_hosts_pass_whatever_they_resolve_to() {
        let allow = [
            "registry.internal:5000",
            "localhost",
            "[::1]:5000",
            "10.0.0.5",
        ]
        .into_iter()
        .map(|e| AllowedHost::parse(e).expect(e))
        .collect();
        let filter = AddressFilter::PublicOnly { allow };
        let private = addrs(&["10.0.0.9:5000"]);
        let cases: &[(&str, u16, bool)] = &[
            ("registry.internal", 5000, true),
            ("REGISTRY.internal", 5000, true),
            ("registry.internal", 5001, false),
            ("registry.internal.evil.com", 5000, false),
            ("localhost", 1234, true),
            ("[::1]", 5000, true),
            ("[0:0:0:0:0:0:0:1]", 5000, true),
            ("[::1]", 5001, false),
            ("10.0.0.5", 80, true),
            ("10.0.0.6", 80, false),
        ];
        for (host, port, want) in cases {
            assert_eq!(
                filter.check(host, *port, private.clone()).is_ok(),
                *want,
                "{host}:{port}"
            );
        }
    }

    #[test]
    fn allowlist_entries_must_be_host_optional_port_and_optional_path() {
        for bad in [
            "",
            "https://registry.io",
            "registry.io/",
            "registry.io/team/",
            "registry.io/Team",
            "registry.io/team:1",
            "registry.io/team@sha256:abc",
            "registry.io//team",
            "registry.io:port",
            "registry.io:99999",
            "user@registry.io",
            "[::1",
        ] {
            let err = AllowedHost::parse(bad).expect_err(bad);
            assert!(err.to_string().contains("host[:port][/path]"), "{err}");
        }
        for (good, shown) in [
            ("registry.io", "registry.io"),
            ("Registry.IO:5000", "registry.io:5000"),
            ("registry.io:5000/team-a", "registry.io:5000/team-a"),
            ("[::1]:5000/team/sub", "[::1]:5000/team/sub"),
            ("[0:0::1]:5000", "[::1]:5000"),
        ] {
            let entry = AllowedHost::parse(good).expect(good);
            assert_eq!(entry.to_string(), shown);
        }
        let err = AllowedHost::parse("registry.io/Team")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lowercase"), "the grammar's reason: {err}");
    }

    fn endpoint(uri: &str) -> Endpoint {
        Endpoint::of(&RegistryUri::parse(uri).expect(uri)).expect(uri)
    }

    #[test]
    fn an_entry_with_a_path_covers_only_namespaces_inside_it() {
        let allow = ["127.0.0.1:5000/team-a", "[::1]:5000/x/y", "10.0.0.5"]
            .into_iter()
            .map(|e| AllowedHost::parse(e).expect(e))
            .collect();
        let filter = AddressFilter::PublicOnly { allow };
        let cases: &[(&str, Option<&str>, bool)] = &[
            ("127.0.0.1:5000", Some("team-a"), true),
            ("127.0.0.1:5000", Some("team-a/app"), true),
            ("127.0.0.1:5000", Some("team-a/sub/app"), true),
            ("127.0.0.1:5000", Some("team-a-evil"), false),
            ("127.0.0.1:5000", Some("team-a-evil/app"), false),
            ("127.0.0.1:5000", Some("team-b/app"), false),
            ("127.0.0.1:5000", Some("team"), false),
            ("127.0.0.1:5000", None, false),
            ("[0::1]:5000", Some("x/y/z"), true),
            ("[::1]:5000", Some("x"), false),
            ("10.0.0.5:443", None, true),
            ("10.0.0.5:5000", Some("anything"), true),
            // No entry names these: the address check decides.
            ("127.0.0.1:5001", Some("team-b"), true),
            ("registry.io", None, true),
        ];
        for (registry, namespace, want) in cases {
            let result = filter.check_namespace(&endpoint(registry), *namespace, registry);
            assert_eq!(
                result.is_ok(),
                *want,
                "{registry} {namespace:?}: {result:?}"
            );
        }
        let err = filter
            .check_namespace(
                &endpoint("127.0.0.1:5000"),
                Some("team-b"),
                "127.0.0.1:5000/team-b",
            )
            .unwrap_err();
        assert_eq!(err.allowed, vec!["127.0.0.1:5000/team-a".to_string()]);
        assert!(err.to_string().contains("127.0.0.1:5000/team-b"), "{err}");
        assert!(
            AddressFilter::AllowAll
                .check_namespace(&endpoint("127.0.0.1:5000"), None, "x")
                .is_ok()
        );
    }

    #[test]
    fn a_path_entry_still_opens_its_host_and_port_to_connections() {
        let allow = vec![AllowedHost::parse("127.0.0.1:5000/team-a").expect("entry")];
        let filter = AddressFilter::PublicOnly { allow };
        let loopback = addrs(&["127.0.0.1:5000"]);
        assert!(filter.check("127.0.0.1", 5000, loopback.clone()).is_ok());
        assert!(filter.check("127.0.0.1", 5001, loopback).is_err());
        assert!(filter.allowlists(&endpoint("127.0.0.1:5000/anything")));
        assert!(!filter.allowlists(&endpoint("127.0.0.1:5001")));
        assert!(!AddressFilter::AllowAll.allowlists(&endpoint("127.0.0.1:5000")));
    }

    #[test]
    fn a_tenants_entries_extend_the_server_wide_ones_and_allow_all_stays() {
        let server = EgressPolicy::public_only(vec![AllowedHost::parse("a.internal").unwrap()]);
        let own = [AllowedHost::parse("127.0.0.1:5000/team-a").unwrap()];
        let tenant = server.with_allowed(&own);
        assert!(tenant.addresses.allowlists(&endpoint("127.0.0.1:5000")));
        assert!(tenant.addresses.allowlists(&endpoint("a.internal")));
        assert!(!server.addresses.allowlists(&endpoint("127.0.0.1:5000")));
        assert_eq!(
            EgressPolicy::allow_all().with_allowed(&own),
            EgressPolicy::allow_all()
        );
    }

    #[test]
    fn uris_overlap_when_one_contains_the_other_on_the_same_endpoint() {
        let cases: &[(&str, &str, bool)] = &[
            ("127.0.0.1:5000/team-a", "127.0.0.1:5000/team-a", true),
            ("127.0.0.1:5000/team-a", "127.0.0.1:5000/team-a/sub", true),
            ("127.0.0.1:5000/team-a/sub", "127.0.0.1:5000/team-a", true),
            ("127.0.0.1:5000/team-a", "127.0.0.1:5000", true),
            ("127.0.0.1:5000", "127.0.0.1:5000", true),
            ("127.0.0.1:5000/team-a", "127.0.0.1:5000/team-b", false),
            ("127.0.0.1:5000/team-a", "127.0.0.1:5000/team-a-evil", false),
            ("127.0.0.1:5000/team-a", "127.0.0.1:5001/team-a", false),
            ("127.0.0.1:5000/team-a", "127.0.0.2:5000/team-a", false),
            ("[::1]:5000/t", "[0:0::1]:5000/t/x", true),
            ("Registry.io/t", "registry.io:443/t", true),
            ("localhost/t", "localhost:80/t", true),
            ("docker.io/library", "index.docker.io/library/x", true),
        ];
        for (a, b, want) in cases {
            let (x, y) = (
                RegistryUri::parse(a).expect(a),
                RegistryUri::parse(b).expect(b),
            );
            assert_eq!(overlap(&x, &y), *want, "{a} ~ {b}");
            assert_eq!(overlap(&y, &x), *want, "{b} ~ {a}");
        }
    }

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).expect("url")
    }

    #[test]
    fn redirects_are_followed_only_to_the_same_origin_and_only_a_few_times() {
        let rule = RedirectRule::SameOrigin { max: 3 };
        let from = url("https://registry.io/v2/team/app/tags/list");
        let cases: &[(&str, u32, bool)] = &[
            ("https://registry.io/v2/team/app/tags/list?n=1", 1, true),
            ("https://registry.io:443/other", 3, true),
            ("https://REGISTRY.io/x", 1, true),
            ("https://registry.io/x", 4, false),
            ("http://registry.io/x", 1, false),
            ("https://registry.io:8443/x", 1, false),
            ("https://evil.com/x", 1, false),
            ("https://registry.io.evil.com/x", 1, false),
            ("https://127.0.0.1/x", 1, false),
        ];
        for (to, hop, want) in cases {
            assert_eq!(
                rule.check(&from, &url(to), *hop).is_ok(),
                *want,
                "{to} at hop {hop}"
            );
        }
        let local = url("http://localhost:5000/v2/");
        assert!(
            rule.check(&local, &url("http://localhost:5000/b"), 1)
                .is_ok()
        );
        assert!(
            rule.check(&local, &url("http://localhost:5001/b"), 1)
                .is_err()
        );
        assert_eq!(
            RedirectRule::Refuse.check(&from, &from, 1),
            Err(RedirectRefused::NotFollowed)
        );
    }
}
