//! The image reference parser and segment-aware containment: never panics,
//! and what it accepts round-trips and stays inside what contains it.
//! Input: `URI\nIMAGE` (or just an image).
#![no_main]

use flavorbox_grammar::{Reference, RegistryUri};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (uri_text, image_text) = text.split_once('\n').unwrap_or(("", text));
    let Ok(reference) = Reference::parse(image_text) else {
        return;
    };
    // Normalised output parses to the same reference.
    let again = Reference::parse(&reference.to_string()).expect("normalised reference parses");
    assert_eq!(again, reference, "round trip of {image_text:?}");
    assert!(
        reference.path().len() <= 255,
        "path over 255: {image_text:?}"
    );
    let _ = reference.familiar();
    let Ok(uri) = RegistryUri::parse(uri_text) else {
        return;
    };
    if uri.contains(&reference) {
        // Containment is by whole segments, on the same registry (host
        // names compare without case, as DNS does).
        assert!(
            uri.domain().eq_ignore_ascii_case(reference.domain()),
            "{uri_text:?} contains {image_text:?} on another registry"
        );
        if let Some(prefix) = uri.path() {
            let path = reference.path();
            assert!(
                path == prefix || path.starts_with(&format!("{prefix}/")),
                "{uri_text:?} contains {image_text:?} but not by segments"
            );
        }
    }
});
