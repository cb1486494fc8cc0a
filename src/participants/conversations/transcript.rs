//! Merging journals into one transcript, in causal order, and checking it
//! against the chain digest.
//!
//! A message that travels between two participants is journaled twice: by
//! its sender as `sent` (with the message that caused it, the step that
//! produced it and the token's chain digest) and by its receiver (with the
//! step it performed there). [`merge`] makes one [`Line`] of both records.
//! [`order`] puts the lines in causal order: a message comes after the one
//! that caused it, and among messages whose causes are already placed, the
//! earliest comes first.
//!
//! [`verify`] checks the transcript with the chain alone, as a third party
//! could. The final token is the latest chained message that no other
//! chained message names as its cause. From it, the walk follows
//! `causation_id` back to the conversation's first message, then replays
//! `chn = SHA-256(previous chn ‖ jti ‖ iss ‖ step)` forward from the genesis
//! digest and compares the result with the final token's digest. Every
//! chained message is also checked against its own cause, so a branch (a
//! declined payment, a Reply-To continuation) is verified too, and a failure
//! says where: a cause missing from every journal, a sender's record missing,
//! two journals disagreeing, or a digest that does not recompute. Faults and
//! events journaled without a token have no digest: they are shown in the
//! transcript but are not part of the chain.
//!
//! What the chain cannot show: records lost *after* the latest surviving one
//! (the journals have no later token to compare with) — the client's last
//! token is the only witness of those.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};

use serde::Serialize;

use crate::conversation::chain::{self, Turn};
use crate::ids::MessageId;
use crate::store::{JournalEntry, MessageKind};

/// One participant's record of a message.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Side {
    pub participant: String,
    /// The step the message performed for this participant.
    pub step: String,
    /// `sent`, `received`, or what happened (a problem slug, `published`).
    pub status: String,
    /// Unix milliseconds.
    pub at: i64,
    /// The chain digest this side recorded (shown once, on the line).
    #[serde(skip)]
    pub chain: String,
}

/// One message of the conversation, with both sides' records of it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Line {
    pub message_id: String,
    pub causation_id: Option<String>,
    pub from: String,
    pub to: String,
    pub pattern: String,
    pub kind: MessageKind,
    /// The step that produced the message (the sender's), or the receiver's
    /// step when the sender's record is missing.
    pub step: String,
    /// The token's chain digest at this message; empty for faults and events
    /// that carry no token.
    pub chain: String,
    /// The earliest record of the message, unix milliseconds.
    pub at: i64,
    pub sent: Option<Side>,
    pub received: Vec<Side>,
}

impl Line {
    /// Whether the message carried a token, and so is part of the chain.
    pub fn is_chained(&self) -> bool {
        !self.chain.is_empty()
    }

    /// The step the receiver performed, when it recorded one.
    pub fn received_step(&self) -> Option<&str> {
        self.received.first().map(|side| side.step.as_str())
    }
}

/// Where the transcript fails the chain check.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Gap {
    /// The message where the gap shows (`None`: the journals as a whole).
    pub message: Option<String>,
    pub problem: String,
}

/// The outcome of the chain check.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Verdict {
    /// Every record the chain needs is there and every digest recomputes.
    pub complete: bool,
    /// The latest chained message no other one names as its cause.
    pub final_message: Option<String>,
    /// Its chain digest, as journaled.
    pub final_chain: Option<String>,
    /// The replay from the genesis digest along the walk reproduces `final_chain`.
    pub chain_verified: bool,
    /// How many turns the walk from the final token back to the first message covers.
    pub turns: usize,
    pub gaps: Vec<Gap>,
}

/// Makes one line per message id of the entries (of one conversation).
pub fn merge(entries: Vec<JournalEntry>) -> Vec<Line> {
    let mut lines: Vec<Line> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for entry in entries {
        let side = Side {
            participant: entry.participant.clone(),
            step: entry.step.clone(),
            status: entry.status.clone(),
            at: entry.at,
            chain: entry.chain.clone(),
        };
        let is_sender = entry.participant == entry.from_participant;
        match index.get(&entry.message_id) {
            Some(&i) => {
                let line = &mut lines[i];
                line.at = line.at.min(entry.at);
                if is_sender && line.sent.is_none() {
                    line.causation_id = entry.causation_id;
                    line.to = entry.to_participant;
                    line.pattern = entry.pattern;
                    line.kind = entry.kind;
                    line.step = entry.step;
                    line.chain = entry.chain;
                    line.sent = Some(side);
                } else if !is_sender && !line.received.contains(&side) {
                    line.received.push(side);
                }
            }
            None => {
                index.insert(entry.message_id.clone(), lines.len());
                lines.push(Line {
                    message_id: entry.message_id,
                    causation_id: entry.causation_id,
                    from: entry.from_participant,
                    to: entry.to_participant,
                    pattern: entry.pattern,
                    kind: entry.kind,
                    step: entry.step,
                    chain: entry.chain,
                    at: entry.at,
                    sent: is_sender.then(|| side.clone()),
                    received: if is_sender { vec![] } else { vec![side] },
                });
            }
        }
    }
    lines
}

/// Causal order: a message after its cause; among the messages ready to
/// place, the earliest first (then by id, for a stable order).
pub fn order(lines: Vec<Line>) -> Vec<Line> {
    let ids: HashMap<&str, usize> = lines
        .iter()
        .enumerate()
        .map(|(i, line)| (line.message_id.as_str(), i))
        .collect();
    let mut children: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut ready = BinaryHeap::new();
    for (i, line) in lines.iter().enumerate() {
        match line.causation_id.as_deref().and_then(|c| ids.get(c)) {
            Some(&cause) if cause != i => children.entry(cause).or_default().push(i),
            _ => ready.push(Reverse((line.at, line.message_id.as_str(), i))),
        }
    }
    let mut placed = vec![false; lines.len()];
    let mut sequence = Vec::with_capacity(lines.len());
    loop {
        while let Some(Reverse((_, _, i))) = ready.pop() {
            placed[i] = true;
            sequence.push(i);
            for &child in children.get(&i).into_iter().flatten() {
                let line = &lines[child];
                ready.push(Reverse((line.at, line.message_id.as_str(), child)));
            }
        }
        // Only a cycle of causes (tampered records) leaves lines unplaced:
        // place its earliest line and go on.
        match (0..lines.len())
            .filter(|&i| !placed[i])
            .min_by_key(|&i| (lines[i].at, &lines[i].message_id))
        {
            Some(i) => {
                placed[i] = true;
                sequence.push(i);
                for &child in children.get(&i).into_iter().flatten() {
                    if !placed[child] {
                        let line = &lines[child];
                        ready.push(Reverse((line.at, line.message_id.as_str(), child)));
                    }
                }
            }
            None => break,
        }
    }
    let mut slots: Vec<Option<Line>> = lines.into_iter().map(Some).collect();
    sequence
        .into_iter()
        .filter_map(|i| slots[i].take())
        .collect()
}

/// Checks the chained messages of `lines` against their chain digests.
pub fn verify(lines: &[Line]) -> Verdict {
    let by_id: HashMap<&str, &Line> = lines
        .iter()
        .map(|line| (line.message_id.as_str(), line))
        .collect();
    let chained: Vec<&Line> = lines.iter().filter(|line| line.is_chained()).collect();
    let mut gaps = Vec::new();
    for line in &chained {
        if let Some(problem) = check_link(line, &by_id) {
            gaps.push(Gap {
                message: Some(line.message_id.clone()),
                problem,
            });
        }
    }
    let named: HashSet<&str> = chained
        .iter()
        .filter_map(|line| line.causation_id.as_deref())
        .collect();
    let Some(last) = chained
        .iter()
        .filter(|line| !named.contains(line.message_id.as_str()))
        .max_by_key(|line| (line.at, &line.message_id))
    else {
        gaps.push(Gap {
            message: None,
            problem: "no message of this conversation carries a chain digest".into(),
        });
        return Verdict {
            gaps,
            ..Verdict::default()
        };
    };
    let walk = walk_back(last, &by_id);
    let chain_verified =
        walk.reached_start && replay(&walk.path).is_some_and(|digest| digest == last.chain);
    if walk.reached_start && !chain_verified && gaps.is_empty() {
        gaps.push(Gap {
            message: Some(last.message_id.clone()),
            problem:
                "replaying the chain from the first message does not reproduce the final digest"
                    .into(),
        });
    }
    Verdict {
        complete: chain_verified && gaps.is_empty(),
        final_message: Some(last.message_id.clone()),
        final_chain: Some(last.chain.clone()),
        chain_verified,
        turns: walk.path.len(),
        gaps,
    }
}

/// What is wrong with one chained message's link to its cause, if anything.
fn check_link(line: &Line, by_id: &HashMap<&str, &Line>) -> Option<String> {
    let what = format!("{} ({} by {})", line.message_id, line.step, line.from);
    let Some(sent) = &line.sent else {
        let receivers: Vec<&str> = line
            .received
            .iter()
            .map(|side| side.participant.as_str())
            .collect();
        return Some(format!(
            "{what}: only {}'s record of receiving it survives; {}'s record of sending it is missing",
            receivers.join(" and "),
            line.from
        ));
    };
    let Ok(jti) = line.message_id.parse::<MessageId>() else {
        return Some(format!("{what}: the message id is not a UUID"));
    };
    let previous = match line.causation_id.as_deref() {
        None => chain::GENESIS,
        Some(cause) => match by_id.get(cause) {
            None => {
                return Some(format!(
                    "the message that caused {what}, {cause}, is missing from every journal"
                ));
            }
            Some(cause) if !cause.is_chained() => {
                return Some(format!(
                    "{what} names {} as its cause, a message without a chain digest",
                    cause.message_id
                ));
            }
            Some(cause) => cause.chain.as_str(),
        },
    };
    let expected = chain::extend(previous, jti, &line.from, &line.step);
    if expected != line.chain {
        return Some(format!(
            "chain digest mismatch at {what}: journaled {}, recomputed {expected}",
            line.chain
        ));
    }
    let disagreeing: BTreeSet<&str> = line
        .received
        .iter()
        .filter(|side| side.chain != sent.chain)
        .map(|side| side.participant.as_str())
        .collect();
    if !disagreeing.is_empty() {
        return Some(format!(
            "{}'s and {}'s journals disagree about the chain digest of {what}",
            sent.participant,
            disagreeing.into_iter().collect::<Vec<_>>().join(" and ")
        ));
    }
    None
}

struct Walk<'a> {
    /// From the first message reached to the final one.
    path: Vec<&'a Line>,
    /// The walk ended at a message with no cause (the conversation's first).
    reached_start: bool,
}

/// Follows causation from the final message back as far as the records go.
fn walk_back<'a>(last: &'a Line, by_id: &HashMap<&str, &'a Line>) -> Walk<'a> {
    let mut path = vec![last];
    let mut seen: HashSet<&str> = HashSet::from([last.message_id.as_str()]);
    let mut current = last;
    let reached_start = loop {
        if current.sent.is_none() {
            break false;
        }
        let Some(cause) = current.causation_id.as_deref() else {
            break true;
        };
        match by_id.get(cause) {
            Some(line) if line.is_chained() && seen.insert(cause) => {
                path.push(line);
                current = line;
            }
            _ => break false,
        }
    };
    path.reverse();
    Walk {
        path,
        reached_start,
    }
}

/// The digest the path arrives at, replayed from the genesis digest.
fn replay(path: &[&Line]) -> Option<String> {
    let turns = path
        .iter()
        .map(|line| {
            Some(Turn {
                jti: line.message_id.parse().ok()?,
                iss: &line.from,
                step: &line.step,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(chain::replay(turns))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chained conversation: basket starts, basket asks pricing, pricing
    /// replies; each message journaled by its sender, the request by its
    /// receiver too.
    fn conversation() -> Vec<JournalEntry> {
        let mut entries = Vec::new();
        let mut previous: Option<(MessageId, String)> = None;
        for (i, (from, to, step, kind)) in [
            ("basket", "client", "start-checkout", MessageKind::Reply),
            ("basket", "pricing", "checkout", MessageKind::Request),
            ("pricing", "client", "price", MessageKind::Reply),
        ]
        .into_iter()
        .enumerate()
        {
            let jti = MessageId::new();
            let prev_chain = previous.as_ref().map_or("", |(_, c)| c.as_str());
            let chn = chain::extend(prev_chain, jti, from, step);
            let entry = JournalEntry {
                participant: from.into(),
                conversation_id: "c".into(),
                message_id: jti.to_string(),
                causation_id: previous.as_ref().map(|(id, _)| id.to_string()),
                from_participant: from.into(),
                to_participant: to.into(),
                pattern: "turn-taking".into(),
                kind,
                step: step.into(),
                chain: chn.clone(),
                status: "sent".into(),
                at: 1000 + i as i64 * 10,
            };
            if to == "pricing" {
                entries.push(JournalEntry {
                    participant: "pricing".into(),
                    causation_id: None,
                    step: "price".into(),
                    status: "received".into(),
                    at: entry.at + 1,
                    ..entry.clone()
                });
            }
            entries.push(entry);
            previous = Some((jti, chn));
        }
        entries
    }

    #[test]
    fn both_sides_of_a_message_make_one_line_in_causal_order() {
        let mut entries = conversation();
        // A skewed clock puts the reply before its request: cause still wins.
        entries[3].at = 0;
        let lines = order(merge(entries));
        assert_eq!(lines.len(), 3);
        let steps: Vec<&str> = lines.iter().map(|l| l.step.as_str()).collect();
        assert_eq!(steps, ["start-checkout", "checkout", "price"]);
        assert_eq!(lines[1].sent.as_ref().unwrap().participant, "basket");
        assert_eq!(lines[1].received_step(), Some("price"));
    }

    #[test]
    fn an_intact_transcript_verifies_against_the_final_digest() {
        let entries = conversation();
        let last_chain = entries.last().unwrap().chain.clone();
        let verdict = verify(&order(merge(entries)));
        assert!(verdict.complete, "{verdict:?}");
        assert!(verdict.chain_verified);
        assert_eq!(verdict.turns, 3);
        assert_eq!(verdict.final_chain, Some(last_chain));
    }

    #[test]
    fn a_missing_cause_a_missing_sender_and_an_altered_step_are_gaps() {
        let without_start: Vec<_> = conversation()
            .into_iter()
            .filter(|e| e.step != "start-checkout")
            .collect();
        let verdict = verify(&merge(without_start));
        assert!(!verdict.complete);
        assert!(
            verdict.gaps[0]
                .problem
                .contains("missing from every journal")
        );

        let without_sender: Vec<_> = conversation()
            .into_iter()
            .filter(|e| !(e.step == "checkout" && e.status == "sent"))
            .collect();
        let verdict = verify(&merge(without_sender));
        assert!(!verdict.complete);
        assert!(
            verdict.gaps[0]
                .problem
                .contains("basket's record of sending it is missing"),
            "{verdict:?}"
        );

        let mut altered = conversation();
        altered[0].step = "start-somewhere-else".into();
        let verdict = verify(&merge(altered));
        assert!(!verdict.complete);
        assert!(verdict.gaps[0].problem.starts_with("chain digest mismatch"));

        let mut disagreeing = conversation();
        disagreeing[1].chain = "forged".into();
        let verdict = verify(&merge(disagreeing));
        assert!(verdict.gaps[0].problem.contains("disagree"), "{verdict:?}");
    }

    #[test]
    fn faults_and_events_without_a_token_stay_out_of_the_chain() {
        let mut entries = conversation();
        let cause = entries[0].message_id.clone();
        entries.push(JournalEntry {
            participant: "pricing".into(),
            conversation_id: "c".into(),
            message_id: MessageId::new().to_string(),
            causation_id: Some(cause),
            from_participant: "payments".into(),
            to_participant: "pricing".into(),
            pattern: "fault-replaces-message".into(),
            kind: MessageKind::Fault,
            step: "take-payment".into(),
            chain: String::new(),
            status: "card-declined".into(),
            at: 2000,
        });
        let lines = order(merge(entries));
        assert_eq!(lines.len(), 4);
        let verdict = verify(&lines);
        assert!(verdict.complete, "{verdict:?}");
        assert_eq!(verdict.turns, 3);
    }
}
