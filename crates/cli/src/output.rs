//! How results look: tables and key/value lines for people, one JSON
//! document with `--json`, flavor log lines and warnings on stderr, and the
//! engine's progress as a bar on a terminal or plain lines otherwise.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressStyle};

use flavorbox_app::LogLine;
use flavorbox_app::PushEvent;
use flavorbox_app::{ComponentInfo, FlavorInfo};

pub(crate) fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Prints rows under headers, each column as wide as its widest cell.
pub(crate) fn print_table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (cell, w) in cells.iter().zip(&widths) {
            out.push_str(&format!("{cell:<w$}  "));
        }
        println!("{}", out.trim_end());
    };
    line(headers.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Prints a flavor's log lines; `trace` and `debug` only with `FLAVORBOX_LOG=debug`.
pub(crate) fn print_logs(source: &str, logs: &[LogLine]) {
    let verbose =
        std::env::var("FLAVORBOX_LOG").is_ok_and(|v| v.contains("debug") || v.contains("trace"));
    for line in logs {
        if !verbose && line.level.is_detail() {
            continue;
        }
        eprintln!("flavor {source} [{}] {}", line.level, line.message);
    }
}

pub(crate) fn print_flavor(f: &FlavorInfo) -> anyhow::Result<()> {
    let m = &f.metadata;
    println!("name:          {}", f.name);
    println!("display name:  {}", m.display_name);
    println!(
        "source:        {}",
        if f.builtin { "built-in" } else { "registered" }
    );
    println!("sha256:        {}", f.sha256);
    if let Some(at) = &f.registered_at {
        println!("registered at: {at}");
    }
    if let Some(origin) = &f.origin {
        println!("origin:        {}", origin.reference);
        println!("origin digest: {}", origin.digest);
        if let Some(key) = &origin.signed_by {
            println!("signed by key: {key}");
        }
    }
    println!("wit version:   {}", m.wit_version);
    println!("description:   {}", m.description);
    println!("docs:          {}", m.docs_url);
    if !m.logo_url.is_empty() {
        println!("logo:          {}", m.logo_url);
    }
    let caps: Vec<String> = m.capabilities.iter().map(|c| c.to_string()).collect();
    println!(
        "capabilities:  {}",
        if caps.is_empty() {
            "none".to_string()
        } else {
            caps.join(", ")
        }
    );
    println!("config schema:");
    println!("{}", serde_json::to_string_pretty(&m.config_schema)?);
    Ok(())
}

pub(crate) fn print_component(c: &ComponentInfo) -> anyhow::Result<()> {
    println!("name:     {}", c.name);
    println!("flavor:   {}", c.flavor);
    println!("uri:      {}", c.uri);
    println!("is_local: {}", c.is_local);
    println!("secret:   {}", c.secret.as_deref().unwrap_or("-"));
    println!("created:  {}", c.created_at);
    println!("updated:  {}", c.updated_at);
    println!("config:");
    println!("{}", serde_json::to_string_pretty(&c.config)?);
    Ok(())
}

/// Shows the engine's progress: a bar on a terminal, plain lines otherwise.
///
/// Docker's push stream as bollard 0.19 exposes it carries no layer ids, so
/// the bar follows whichever layer the engine reports on.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    last: Option<String>,
}

impl Progress {
    pub(crate) fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {msg:<24} [{bar:30}] {bytes}/{total_bytes}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        });
        Progress { bar, last: None }
    }

    pub(crate) fn event(&mut self, event: PushEvent) {
        let (id, status, current, total) = match event {
            PushEvent::Layer {
                id,
                status,
                current,
                total,
            } => (id, status, current, total),
            PushEvent::Status { status } => (String::new(), status, None, None),
        };
        let line = if id.is_empty() {
            status
        } else {
            format!("{id}: {status}")
        };
        match &self.bar {
            Some(bar) => {
                if let Some(total) = total {
                    bar.set_length(total);
                }
                if let Some(current) = current {
                    bar.set_position(current);
                }
                if self.last.as_deref() != Some(line.as_str()) {
                    if current.is_none() {
                        bar.println(&line);
                    }
                    bar.set_message(line.clone());
                }
            }
            None => {
                if self.last.as_deref() != Some(line.as_str()) {
                    eprintln!("{line}");
                }
            }
        }
        self.last = Some(line);
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
