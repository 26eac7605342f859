//! Guest text made safe for the host to keep and show.
//!
//! Everything a flavor says (log lines, issues, reasons, warnings, metadata)
//! reaches terminals, logs and HTTP responses. It is truncated first, so a
//! hostile line costs the host at most its cap, then escaped: control
//! characters (terminal escapes, newlines), bidirectional overrides and
//! zero-width characters (which make text read differently from what it is)
//! become their `\u{..}` form.

/// Whether `c` changes how surrounding text is shown without being visible.
fn is_deceptive(c: char) -> bool {
    matches!(c,
        // Bidirectional embeddings, overrides and isolates.
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        // Bidirectional marks.
        | '\u{200E}' | '\u{200F}' | '\u{061C}'
        // Zero-width and invisible formatting characters.
        | '\u{200B}'..='\u{200D}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{00AD}'
        | '\u{180E}' | '\u{034F}' | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}'
        // Interlinear annotation and object replacement controls.
        | '\u{FFF9}'..='\u{FFFB}'
        // Tag characters (invisible, used to smuggle text).
        | '\u{E0000}'..='\u{E007F}')
}

/// Whether `c` must be escaped before guest text is shown.
fn needs_escape(c: char) -> bool {
    c.is_control() || is_deceptive(c)
}

/// Guest text made safe to show: control, bidirectional and zero-width
/// characters are replaced by their escaped form.
pub fn clean(text: &str) -> String {
    if !text.chars().any(needs_escape) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Truncates guest text to `max` bytes of input, then cleans it: the cost is
/// bounded by `max`, whatever the guest sent. The result may be longer than
/// `max` by the escapes (at most 10 bytes per input byte).
pub fn clean_truncated(text: &str, max: usize) -> String {
    if text.len() <= max {
        return clean(text);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = clean(&text[..end]);
    out.push('…');
    out
}

/// Truncates to at most `max` bytes on a char boundary, marking the cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The first line of a message, at most 500 bytes.
pub fn first_line(s: &str) -> String {
    truncate(s.lines().next().unwrap_or_default(), 500)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_bidi_and_zero_width_characters_are_escaped() {
        for (input, expected) in [
            ("plain", "plain"),
            ("a\x1b[31mb", "a\\u{1b}[31mb"),
            ("line\nbreak", "line\\nbreak"),
            ("evil\u{202E}txt.exe", "evil\\u{202e}txt.exe"),
            ("\u{2066}iso\u{2069}", "\\u{2066}iso\\u{2069}"),
            (
                "zero\u{200B}width\u{200D}join",
                "zero\\u{200b}width\\u{200d}join",
            ),
            ("\u{FEFF}bom", "\\u{feff}bom"),
            ("tag\u{E0041}", "tag\\u{e0041}"),
            ("unicode é ü 日本", "unicode é ü 日本"),
        ] {
            assert_eq!(clean(input), expected, "{input:?}");
        }
    }

    #[test]
    fn truncation_happens_before_cleaning() {
        let hostile = "\x1b".repeat(1 << 20);
        let out = clean_truncated(&hostile, 16);
        assert_eq!(out, format!("{}…", "\\u{1b}".repeat(16)));
        assert_eq!(clean_truncated("short", 16), "short");
        assert_eq!(clean_truncated("ééé", 3), "é…");
    }
}
