//! Pause, resume and drain of one thread or of every thread a selector picks (`--all`,
//! `--in-state S`, `--plan P`, `--errors`), for both command lines: one line (or JSON
//! object) per thread touched, saying what happened to it.

use clap::Args;
use damocles_core::{AdminError, AdminTransport, ParseStateError, Plan, ThreadInfo};
use serde::Serialize;

use crate::exit::{self, CliError, ErrorKind};
use crate::render;

/// The selectors besides an index; at most one, or an index.
#[derive(Debug, Clone, Default, Args)]
pub struct SelectorFlags {
    /// Every thread.
    #[arg(long)]
    pub all: bool,
    /// The threads whose job is in this state (e.g. `C1Done`).
    #[arg(long = "in-state", value_name = "STATE")]
    pub in_state: Option<String>,
    /// The threads of this plan.
    #[arg(long, value_name = "PLAN")]
    pub plan: Option<Plan>,
    /// The threads paused with an error.
    #[arg(long)]
    pub errors: bool,
}

/// Which threads to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// One thread.
    Index(u64),
    /// Every thread.
    All,
    /// Threads whose job is in this state.
    InState(String),
    /// Threads of this plan.
    Plan(Plan),
    /// Threads paused with an error.
    Errors,
}

/// Threads not chosen as [`Selector::from_parts`] wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// Neither an index nor a flag.
    #[error("say which threads: an index, --all, --in-state S, --plan P or --errors")]
    NoneChosen,
    /// More than one.
    #[error("give one of: an index, --all, --in-state, --plan, --errors")]
    SeveralChosen,
}

impl Selector {
    /// Exactly one of an index and the flags.
    pub fn from_parts(index: Option<u64>, flags: &SelectorFlags) -> Result<Self, SelectorError> {
        let mut chosen = Vec::new();
        if let Some(index) = index {
            chosen.push(Selector::Index(index));
        }
        if flags.all {
            chosen.push(Selector::All);
        }
        if let Some(state) = &flags.in_state {
            chosen.push(Selector::InState(state.clone()));
        }
        if let Some(plan) = flags.plan {
            chosen.push(Selector::Plan(plan));
        }
        if flags.errors {
            chosen.push(Selector::Errors);
        }
        match chosen.len() {
            1 => Ok(chosen.remove(0)),
            0 => Err(SelectorError::NoneChosen),
            _ => Err(SelectorError::SeveralChosen),
        }
    }

    /// The indices of `threads` this selector picks.
    pub fn pick(&self, threads: &[ThreadInfo]) -> Result<Vec<u64>, ParseStateError> {
        let picked = |keep: &dyn Fn(&ThreadInfo) -> bool| {
            threads
                .iter()
                .filter(|t| keep(t))
                .map(|t| t.index as u64)
                .collect()
        };
        Ok(match self {
            Selector::Index(index) => vec![*index],
            Selector::All => picked(&|_| true),
            Selector::Plan(plan) => picked(&|t| t.known_plan() == Some(*plan)),
            Selector::Errors => picked(&|t| t.last_error.is_some()),
            Selector::InState(name) => {
                // The name must be a state of some thread's plan.
                let known = threads
                    .iter()
                    .any(|t| t.known_plan().is_some_and(|p| p.parse_state(name).is_ok()))
                    || Plan::Sealer.parse_state(name).is_ok();
                if !known {
                    Plan::Sealer.parse_state(name)?;
                }
                picked(&|t| t.job_state_shown() == name)
            }
        })
    }
}

/// What to do to each thread picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Pause.
    Pause,
    /// Resume, at this state when given.
    Resume(Option<String>),
    /// Drain (`true`) or undrain.
    Drain(bool),
}

#[derive(Serialize)]
#[serde(untagged)]
enum Line<'a> {
    Paused(render::PauseJson),
    Resumed(render::ResumeJson<'a>),
    Drained(render::DrainJson),
    Failed {
        index: u64,
        error: render::ErrorBody<'a>,
    },
}

/// Acts on the threads `selector` picks; returns the text to print and the exit code.
/// With one index the output is the single-thread one; with a selector, one line (or one
/// array element) per thread touched.
pub async fn run(
    client: &dyn AdminTransport,
    selector: &Selector,
    action: &Action,
    json: bool,
    prefix: &dyn Fn(&str) -> String,
) -> (String, u8) {
    let indices = match selector {
        Selector::Index(index) => vec![*index],
        other => match client.list().await {
            Ok(threads) => match other.pick(&threads) {
                Ok(indices) => indices,
                Err(unknown) => return failure(json, CliError::bad_input(unknown.to_string())),
            },
            Err(e) => return failure(json, e.into()),
        },
    };
    let mut outcomes = Vec::new();
    for index in indices {
        outcomes.push((index, act(client, index, action).await));
    }
    let single = matches!(selector, Selector::Index(_));
    if single {
        let (index, outcome) = outcomes.remove(0);
        return match outcome {
            Ok((message, done)) => {
                let text = if json {
                    render::json(&done.line(index))
                } else {
                    format!("{}\n", prefix(&message))
                };
                (text, exit::OK)
            }
            Err(e) => failure(json, CliError::admin(&e, prefix)),
        };
    }
    if outcomes.is_empty() {
        let message = "no thread matched; nothing changed";
        return if json {
            ("[]\n".into(), exit::OK)
        } else {
            (format!("{}\n", prefix(message)), exit::OK)
        };
    }
    report(&outcomes, json, prefix)
}

/// What became of one thread: what to print and what was done, or why not.
type Outcome = Result<(String, Done), AdminError>;

/// Does `action` to thread `index`.
async fn act(client: &dyn AdminTransport, index: u64, action: &Action) -> Outcome {
    match action {
        Action::Pause => client
            .pause(index)
            .await
            .map(|o| (render::pause_message(index, o), Done::Pause(o))),
        Action::Resume(state) => client.resume(index, state.clone()).await.map(|o| {
            let message = render::resume_message(index, &o, state.as_deref());
            (message, Done::Resume(o))
        }),
        Action::Drain(on) => client
            .drain(index, *on)
            .await
            .map(|o| (render::drain_message(index, o), Done::Drain(o))),
    }
}

/// The text and exit code of a selector's outcomes: a line (or an array element) per
/// thread; the code of the worst failure.
fn report(
    outcomes: &[(u64, Outcome)],
    json: bool,
    prefix: &dyn Fn(&str) -> String,
) -> (String, u8) {
    let mut code = exit::OK;
    let mut text = String::new();
    let mut lines = Vec::new();
    let messages: Vec<String> = outcomes
        .iter()
        .map(|(index, o)| match o {
            Ok((message, _)) => message.clone(),
            Err(e) => format!("thread #{index}: {e}"),
        })
        .collect();
    for ((index, outcome), message) in outcomes.iter().zip(&messages) {
        match outcome {
            Ok((_, done)) => lines.push(done.line(*index)),
            Err(e) => {
                let kind = ErrorKind::from(e);
                code = code.max(kind.code());
                lines.push(Line::Failed {
                    index: *index,
                    error: render::ErrorBody {
                        kind: kind.name(),
                        message: e.to_string(),
                    },
                });
            }
        }
        if !json {
            text.push_str(&render::cell(&prefix(message)));
            text.push('\n');
        }
    }
    if json {
        text = render::json(&lines);
    }
    (text, code)
}

/// What happened to one thread.
enum Done {
    Pause(damocles_core::PauseOutcome),
    Resume(damocles_core::ResumeOutcome),
    Drain(damocles_core::DrainOutcome),
}

impl Done {
    fn line(&self, index: u64) -> Line<'_> {
        match self {
            Done::Pause(outcome) => Line::Paused(render::PauseJson {
                index,
                outcome: *outcome,
            }),
            Done::Resume(outcome) => Line::Resumed(render::ResumeJson { index, outcome }),
            Done::Drain(outcome) => Line::Drained(render::DrainJson {
                index,
                outcome: *outcome,
            }),
        }
    }
}

fn failure(json: bool, error: CliError) -> (String, u8) {
    if json {
        (render::error_json(&error), error.code())
    } else {
        eprintln!("error: {}", render::cell(&error.message));
        (String::new(), error.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use damocles_core::{PlanState, Stage, State, ThreadState};

    fn thread(index: usize, state: State, error: bool) -> ThreadInfo {
        ThreadInfo {
            index,
            location: format!("/s{index}"),
            plan: Plan::Sealer,
            job_id: Some(format!("s-t01000-{index}")),
            job_state: Some(PlanState::Sector(state)),
            job_stage: Some(Stage::C2),
            thread_state: ThreadState::Idle,
            last_error: error.then(|| "permanent: x".to_owned()),
            pause_requested: false,
            draining: false,
            stuck: false,
            pending_plan: None,
            config_error: None,
            stopping: false,
            as_sent: Default::default(),
        }
    }

    #[test]
    fn exactly_one_selector() {
        let none = SelectorFlags::default();
        assert_eq!(Selector::from_parts(Some(2), &none), Ok(Selector::Index(2)));
        assert!(Selector::from_parts(None, &none).is_err());
        let all = SelectorFlags {
            all: true,
            ..SelectorFlags::default()
        };
        assert_eq!(Selector::from_parts(None, &all), Ok(Selector::All));
        assert!(Selector::from_parts(Some(1), &all).is_err());
    }

    #[test]
    fn selectors_pick_the_right_threads() {
        let threads = [
            thread(0, State::C1Done, true),
            thread(1, State::PC1Done, false),
            thread(2, State::C1Done, false),
        ];
        assert_eq!(Selector::All.pick(&threads), Ok(vec![0, 1, 2]));
        assert_eq!(Selector::Errors.pick(&threads), Ok(vec![0]));
        assert_eq!(
            Selector::InState("C1Done".into()).pick(&threads),
            Ok(vec![0, 2])
        );
        assert_eq!(Selector::Plan(Plan::Snapup).pick(&threads), Ok(vec![]));
        let err = Selector::InState("Foo".into())
            .pick(&threads)
            .expect_err("unknown state");
        assert!(err.to_string().contains("valid states"), "{err}");
    }
}
