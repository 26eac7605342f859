//! `oci://HOST/REPO:TAG[@sha256:…]`: where a flavor artifact lives.
//!
//! The part after `oci://` is an image reference read by the host's own
//! parser (`flavorbox_grammar::reference`), with two rules of its own: the registry host
//! is always named (no silent Docker Hub default), and a tag or a digest is
//! always given (no silent `latest`).

use std::fmt;

use flavorbox_grammar::{Reference, RegistryUri};

use super::error::OciError;

/// The scheme every artifact source starts with.
pub const SCHEME: &str = "oci://";

/// A parsed `oci://` source: registry, repository, and a tag, a digest or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciSource {
    reference: Reference,
}

impl OciSource {
    /// Whether `text` names an OCI source rather than a file.
    pub fn looks_like(text: &str) -> bool {
        text.starts_with(SCHEME)
    }

    /// Parses `oci://HOST[:PORT]/REPO(:TAG|@sha256:HEX|:TAG@sha256:HEX)`.
    pub fn parse(text: &str) -> Result<OciSource, String> {
        let example = "oci://registry.example.com/team/flavor:1.0";
        let Some(rest) = text.strip_prefix(SCHEME) else {
            return Err(format!("it must start with `{SCHEME}`, like `{example}`"));
        };
        let reference = Reference::parse(rest).map_err(|e| e.to_string())?;
        let host_named = rest
            .split_once('/')
            .is_some_and(|(first, _)| first == reference.domain());
        if !host_named {
            return Err(format!(
                "name the registry host before the repository, like `{example}`"
            ));
        }
        if reference.tag().is_none() && reference.digest().is_none() {
            return Err(format!(
                "name a tag or a digest, like `{example}` or `oci://{rest}@sha256:<64 hex digits>`"
            ));
        }
        if let Some(digest) = reference.digest()
            && !digest.starts_with("sha256:")
        {
            return Err(format!(
                "digest `{digest}` is not sha256: only sha256 digests are verified"
            ));
        }
        Ok(OciSource { reference })
    }

    /// The registry `host[:port]`.
    pub fn domain(&self) -> &str {
        self.reference.domain()
    }

    /// The repository path on the registry.
    pub fn repository(&self) -> &str {
        self.reference.path()
    }

    /// The tag, if the source names one.
    pub fn tag(&self) -> Option<&str> {
        self.reference.tag()
    }

    /// The pinned manifest digest, if the source names one.
    pub fn digest(&self) -> Option<&str> {
        self.reference.digest()
    }

    /// Whether the registry is on this machine (plain HTTP is then allowed).
    pub fn is_loopback(&self) -> bool {
        RegistryUri::parse(self.domain()).is_ok_and(|uri| uri.is_loopback())
    }

    /// The same repository and tag, pinned to `digest`; an error if that
    /// does not make a source (never this source unpinned).
    pub fn pinned(&self, digest: &str) -> Result<OciSource, OciError> {
        let mut text = format!("{SCHEME}{}/{}", self.domain(), self.repository());
        if let Some(tag) = self.tag() {
            text.push(':');
            text.push_str(tag);
        }
        text.push('@');
        text.push_str(digest);
        OciSource::derived(text)
    }

    /// The same repository under another tag, without a digest; an error if
    /// that does not make a source (never this source under its own tag).
    pub fn with_tag(&self, tag: &str) -> Result<OciSource, OciError> {
        OciSource::derived(format!(
            "{SCHEME}{}/{}:{tag}",
            self.domain(),
            self.repository()
        ))
    }

    /// The same source without its digest (what `flavor update` resolves
    /// again); none without a tag.
    pub fn unpinned(&self) -> Option<OciSource> {
        let tag = self.tag()?;
        if self.digest().is_none() {
            return Some(self.clone());
        }
        // The host, repository and tag were each accepted by `parse`, and
        // dropping the digest only drops a constraint: this parses, so `ok`
        // discards no failure.
        self.with_tag(tag).ok()
    }

    /// Parses a source built from this one's parts.
    fn derived(text: String) -> Result<OciSource, OciError> {
        OciSource::parse(&text).map_err(|reason| OciError::InvalidSource {
            source_text: text.chars().take(300).collect(),
            reason,
        })
    }

    /// The reference `oci-client` takes; a digest wins over a tag.
    pub(crate) fn client_reference(&self) -> oci_client::Reference {
        let registry = self.domain().to_string();
        let repository = self.repository().to_string();
        match (self.tag(), self.digest()) {
            (Some(tag), Some(digest)) => oci_client::Reference::with_tag_and_digest(
                registry,
                repository,
                tag.to_string(),
                digest.to_string(),
            ),
            (None, Some(digest)) => {
                oci_client::Reference::with_digest(registry, repository, digest.to_string())
            }
            (tag, None) => oci_client::Reference::with_tag(
                registry,
                repository,
                tag.unwrap_or("latest").to_string(),
            ),
        }
    }
}

impl fmt::Display for OciSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}/{}", self.domain(), self.repository())?;
        if let Some(tag) = self.tag() {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = self.digest() {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn sources_name_a_host_and_a_tag_or_digest() {
        let ok = [
            ("oci://127.0.0.1:5000/team/acme:1", Some("1"), None),
            ("oci://registry.example.com/acme:v2", Some("v2"), None),
            ("oci://localhost:5000/acme:1", Some("1"), None),
        ];
        for (text, tag, digest) in ok {
            let source = OciSource::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(source.tag(), tag, "{text}");
            assert_eq!(source.digest(), digest, "{text}");
            assert_eq!(source.to_string(), text);
        }
        let pinned = OciSource::parse(&format!("oci://127.0.0.1:5000/acme:1@{D}")).expect("pinned");
        assert_eq!(pinned.digest(), Some(D));
        assert_eq!(
            pinned.unpinned().map(|s| s.to_string()).as_deref(),
            Some("oci://127.0.0.1:5000/acme:1")
        );
        let refused = [
            ("127.0.0.1:5000/acme:1", "must start with `oci://`"),
            ("oci://acme:1", "name the registry host"),
            ("oci://team/acme:1", "name the registry host"),
            ("oci://127.0.0.1:5000/acme", "name a tag or a digest"),
            ("oci://127.0.0.1:5000/Acme:1", "must be lowercase"),
            ("oci://", "empty"),
        ];
        for (text, why) in refused {
            let err = OciSource::parse(text).expect_err(text);
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn a_source_that_cannot_be_derived_is_an_error_not_the_original() {
        let source = OciSource::parse("oci://127.0.0.1:5000/acme:1").expect("ok");
        let err = source.with_tag("no spaces").expect_err("bad tag");
        assert!(err.to_string().contains("no spaces"), "{err}");
        let err = source.pinned("sha512:abc").expect_err("bad digest");
        assert!(err.to_string().contains("sha512:abc"), "{err}");
        let pinned = source.pinned(D).expect("pinned");
        assert_eq!(pinned.digest(), Some(D));
        assert_eq!(pinned.tag(), Some("1"));
        assert_eq!(
            source.with_tag("2").expect("tag").to_string(),
            "oci://127.0.0.1:5000/acme:2"
        );
    }

    #[test]
    fn loopback_is_judged_on_the_host() {
        assert!(
            OciSource::parse("oci://127.0.0.1:5000/a:1")
                .expect("ok")
                .is_loopback()
        );
        assert!(
            OciSource::parse("oci://localhost:5000/a:1")
                .expect("ok")
                .is_loopback()
        );
        assert!(
            !OciSource::parse("oci://localhost.evil.com/a:1")
                .expect("ok")
                .is_loopback()
        );
    }
}
