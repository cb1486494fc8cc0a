//! The transcript as a Mermaid sequence diagram (`text/vnd.mermaid`).
//!
//! Requests are solid arrows (`->>`), replies dashed (`-->>`), faults end in
//! a cross (`--x`), events are asynchronous (`-)`). The client keeps no
//! journal, so its requests are drawn from what the participants recorded:
//! when a participant sends a message caused by one it had addressed to the
//! client (or starts the conversation), the client took a step there, and an
//! arrow `client->>participant` comes first. A fault or event known only to
//! its receiver is a note over the receiver. The last note gives the verdict
//! of the chain check.

use std::collections::{HashMap, HashSet};
use std::fmt::Write;

use super::transcript::{Line, Verdict};
use crate::store::MessageKind;

/// The client, which takes the steps the next-step links offer.
pub const CLIENT: &str = "client";

/// Renders the ordered transcript; `actors` in the order to declare them.
pub fn render(lines: &[Line], actors: &[String], verdict: &Verdict) -> String {
    let mut out = String::from("sequenceDiagram\n");
    for actor in actors {
        let _ = writeln!(out, "    participant {}", name(actor));
    }
    let by_id: HashMap<&str, &Line> = lines
        .iter()
        .map(|line| (line.message_id.as_str(), line))
        .collect();
    let mut client_steps: HashSet<(Option<&str>, &str)> = HashSet::new();
    for line in lines {
        if line.is_chained() && line.sent.is_some() {
            let cause = line.causation_id.as_deref();
            let after_client = match cause {
                None => true,
                Some(cause) => by_id.get(cause).is_some_and(|c| c.to == CLIENT),
            };
            if after_client && client_steps.insert((cause, line.from.as_str())) {
                arrow(&mut out, CLIENT, "->>", &line.from, &line.step);
            }
        }
        draw(&mut out, line);
    }
    let verdict_text = if verdict.complete {
        format!("complete: the chain verifies over {} turns", verdict.turns)
    } else {
        let first = verdict
            .gaps
            .first()
            .map(|gap| gap.problem.as_str())
            .unwrap_or("the chain does not verify");
        format!("incomplete: {first}")
    };
    let span = match actors.last() {
        Some(last) if last != CLIENT => format!("{CLIENT},{}", name(last)),
        _ => CLIENT.to_owned(),
    };
    let _ = writeln!(out, "    Note over {span}: {}", label(&verdict_text));
    out
}

fn draw(out: &mut String, line: &Line) {
    if !line.is_chained() && line.sent.is_none() {
        let at = line
            .received
            .first()
            .map(|side| side.participant.as_str())
            .unwrap_or(&line.to);
        let status = line
            .received
            .first()
            .map(|side| side.status.as_str())
            .unwrap_or_default();
        let text = format!("{} from {}: {} {status}", line.kind, line.from, line.step);
        let _ = writeln!(out, "    Note over {}: {}", name(at), label(&text));
        return;
    }
    let mut text = match line.received_step() {
        Some(step) if line.kind == MessageKind::Request => step.to_owned(),
        _ => line.step.clone(),
    };
    if !line.is_chained()
        && let Some(sent) = &line.sent
    {
        text = format!("{text}: {}", sent.status);
    }
    if line.is_chained() && line.sent.is_none() {
        text.push_str(" (sender's record missing)");
    }
    let shape = match line.kind {
        MessageKind::Request => "->>",
        MessageKind::Reply => "-->>",
        MessageKind::Fault => "--x",
        MessageKind::Event => "-)",
    };
    for to in line.to.split(',').filter(|to| !to.is_empty()) {
        arrow(out, &line.from, shape, to, &text);
    }
}

fn arrow(out: &mut String, from: &str, shape: &str, to: &str, text: &str) {
    let _ = writeln!(
        out,
        "    {}{shape}{}: {}",
        name(from),
        name(to),
        label(text)
    );
}

/// A participant name as a Mermaid identifier.
pub fn name(actor: &str) -> String {
    let cleaned: String = actor
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "unknown".to_owned()
    } else {
        cleaned
    }
}

/// Message text, without what Mermaid would read as syntax.
fn label(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            ';' | '#' | '\n' | '\r' => ' ',
            c => c,
        })
        .collect()
}
