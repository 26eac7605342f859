//! `flavorbox-native-flavor NAME`: reads a config on stdin, validates it with
//! the built-in flavor NAME's logic compiled natively, prints the normalised
//! config (exit 0) or the issues (exit 1) on stdout. One process per
//! validation: the isolation people reach for first, and the process-per-call
//! baseline of `flavorbox bench`.

use std::io::{Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(name) = std::env::args().nth(1) else {
        eprintln!("usage: flavorbox-native-flavor NAME < config.json");
        return ExitCode::from(2);
    };
    let Some(validate) = flavorbox_bench::native::validate_fn(&name) else {
        eprintln!("error: no built-in flavor named `{name}`");
        return ExitCode::from(2);
    };
    let mut config = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut config) {
        eprintln!("error: cannot read the config from stdin: {e}");
        return ExitCode::from(2);
    }
    let mut out = std::io::stdout().lock();
    let code = match validate(&config) {
        Ok(normalised) => {
            let _ = writeln!(out, "{normalised}");
            0
        }
        Err(issues) => {
            for issue in issues {
                let _ = writeln!(out, "{}: {}", issue.field, issue.message);
            }
            1
        }
    };
    ExitCode::from(code)
}
