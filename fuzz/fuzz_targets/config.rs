//! The base config rules the host applies before and after a flavor runs:
//! never panic, and an accepted config names a well-formed registry URI,
//! normalised (no trailing `/`), which the normalised-config check accepts.
#![no_main]

use flavorbox_app::registry_config as config;
use flavorbox_grammar::RegistryUri;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let options: Vec<String> = text.lines().map(str::to_string).collect();
        let _ = config::parse_options(&options);
    }
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(data)
    else {
        return;
    };
    let Ok((uri, normalised)) = config::apply_base_rules(map) else {
        return;
    };
    let text = uri.to_string();
    assert!(!text.ends_with('/'), "{text}");
    assert_eq!(
        RegistryUri::parse(&text).expect("normalised uri parses"),
        uri
    );
    assert_eq!(
        normalised.get("uri").and_then(|v| v.as_str()),
        Some(text.as_str())
    );
    config::check_normalised(&uri, normalised).expect("the host's own output passes its check");
});
