//! The dashboard's fragments: each the HTML of one view, from the rows and lines the
//! `util` commands print. An `Err` is a status and the text the page shows instead.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use damocles_core::listing::WdPostJobRow;
use damocles_core::{Liveness, ThreadInfo, ThreadState};
use damocles_rpc::manager::{unix_now, ChainView};
use damocles_rpc::method::Permission;
use damocles_rpc::pages::Page;
use damocles_rpc::registry::PingEntry;

use super::html::{button, escape, figure, link, segment, select, table};
use super::{param, text, Dashboard, Refusal};
use crate::render;

type Fragment = Result<String, Refusal>;

/// How many history entries a thread's page shows (the newest).
const EVENTS_SHOWN: usize = 200;

/// How many WindowPoSt jobs the overview lists as the next deadlines.
const NEXT_DEADLINES: usize = 5;

/// The fragment `name` for a viewer with `permission`.
pub(super) async fn fragment(
    dashboard: &Dashboard,
    name: &str,
    query: &[(String, String)],
    permission: Permission,
) -> Page {
    let admin = permission == Permission::Admin;
    let result = match name {
        "overview" => overview(dashboard).await,
        "workers" => workers(dashboard, admin).await,
        "worker" => match param(query, "name") {
            Some(worker) => worker_threads(dashboard, worker, admin).await,
            None => Err(Refusal::new(400, "which worker? (name=…)".to_owned())),
        },
        "events" => events(dashboard, query).await,
        "sectors" => sectors(dashboard, admin),
        "jobs" => dashboard.chain().map(|c| {
            table(
                "Rebuild and unseal jobs (util sealer jobs list)",
                &render::jobs_lines(&c.jobs(), unix_now()),
                None,
                |_| String::new(),
            )
        }),
        "wdpost" => dashboard.chain().map(|c| {
            table(
                "WindowPoSt jobs (util sealer wdpost list)",
                &render::wdpost_lines(&c.wdpost_jobs(), unix_now()),
                None,
                |_| String::new(),
            )
        }),
        other => Err(Refusal::new(404, format!("no such view: {other}"))),
    };
    match result {
        Ok(html) => Page::html(html),
        Err(refused) => text(refused.status, refused.message),
    }
}

async fn entries(dashboard: &Dashboard) -> Result<Vec<PingEntry>, Refusal> {
    dashboard
        .registry
        .entries()
        .await
        .map_err(|e| Refusal::new(503, format!("the worker registry cannot be read: {e}")))
}

fn is_expired(dashboard: &Dashboard, entry: &PingEntry, now: i64) -> bool {
    Liveness::at(entry.last_ping, now, dashboard.expiration) == Liveness::Expired
}

async fn overview(dashboard: &Dashboard) -> Fragment {
    let now = unix_now();
    let entries = entries(dashboard).await?;
    let expired = entries
        .iter()
        .filter(|e| is_expired(dashboard, e, now))
        .count();
    let mut html = String::from("<section class=\"figures\" aria-label=\"Workers\">");
    html.push_str(&figure("workers ok", entries.len() - expired, "ok"));
    html.push_str(&figure(
        "workers expired",
        expired,
        if expired > 0 { "bad" } else { "ok" },
    ));
    let mut sums = [0u64; 6];
    for entry in &entries {
        let s = &entry.info.summary;
        for (sum, n) in sums
            .iter_mut()
            .zip([s.threads, s.running, s.waiting, s.paused, s.empty, s.errors])
        {
            *sum = sum.saturating_add(n);
        }
    }
    for ((label, class), n) in [
        ("threads", ""),
        ("running", ""),
        ("waiting", ""),
        ("paused", "warn"),
        ("empty", ""),
        ("with an error", "bad"),
    ]
    .into_iter()
    .zip(sums)
    {
        html.push_str(&figure(label, n, if n > 0 { class } else { "" }));
    }
    html.push_str("</section>");
    html.push_str(&paused_on_error(dashboard, &entries, now).await);
    match dashboard.chain() {
        Ok(chain) => {
            html.push_str(&sectors_by_state(chain));
            html.push_str(&window_post(&chain.wdpost_jobs(), now));
        }
        Err(refused) => {
            let _ = write!(html, "<p class=\"error\">{}</p>", escape(&refused.message));
        }
    }
    Ok(html)
}

/// The threads of the live workers that are paused on an error, each with its worker.
async fn paused_on_error(dashboard: &Dashboard, entries: &[PingEntry], now: i64) -> String {
    let mut lines = vec!["Worker\tThread\tPlan\tJobID\tJobState\tPaused for\tLastErr".to_owned()];
    let mut workers = Vec::new();
    let mut unreachable = String::new();
    for entry in entries.iter().filter(|e| !is_expired(dashboard, e, now)) {
        let name = &entry.info.name;
        let threads = match dashboard.fleet.threads(name).await {
            Ok(threads) => threads,
            Err(e) => {
                let _ = write!(unreachable, "<p class=\"error\">{}</p>", escape(&e.message));
                continue;
            }
        };
        for t in threads.iter().filter(|t| on_error(t)) {
            let ThreadState::Paused { elapsed } = t.thread_state else {
                continue;
            };
            lines.push(format!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                render::cell(name),
                t.index,
                t.plan_shown(),
                render::cell(t.job_id.as_deref().unwrap_or("-")),
                t.job_state_shown(),
                render::short_age(elapsed),
                render::cell(t.last_error.as_deref().unwrap_or("-")),
            ));
            workers.push(name.clone());
        }
    }
    let mut html = table(
        "Threads paused on an error",
        &lines,
        Some("Worker page"),
        |i| link(&format!("/worker/{}", segment(&workers[i])), "open"),
    );
    html.push_str(&unreachable);
    html
}

fn on_error(t: &ThreadInfo) -> bool {
    matches!(t.thread_state, ThreadState::Paused { .. }) && t.last_error.is_some()
}

fn sectors_by_state(chain: &dyn ChainView) -> String {
    let mut by_state: BTreeMap<String, usize> = BTreeMap::new();
    for sector in chain.sectors() {
        *by_state.entry(sector.state).or_default() += 1;
    }
    let mut lines = vec!["State\tSectors".to_owned()];
    lines.extend(
        by_state
            .iter()
            .map(|(state, n)| format!("{}\t{n}", render::cell(state))),
    );
    table("Sectors by state", &lines, None, |_| String::new())
}

/// The next WindowPoSt deadlines (jobs not done, soonest first) and the last round's jobs.
fn window_post(jobs: &[WdPostJobRow], now: i64) -> String {
    let mut open: Vec<WdPostJobRow> = jobs
        .iter()
        .filter(|j| j.finished_at.is_none() && matches!(j.state.as_str(), "pending" | "proving"))
        .cloned()
        .collect();
    open.sort_by_key(|j| j.deadline_at.unwrap_or(u64::MAX));
    open.truncate(NEXT_DEADLINES);
    let mut html = table(
        "Next WindowPoSt deadlines",
        &render::wdpost_lines(&open, now),
        None,
        |_| String::new(),
    );
    let last_round = jobs
        .iter()
        .filter(|j| j.finished_at.is_some())
        .map(|j| j.round)
        .max();
    if let Some(round) = last_round {
        let round_jobs: Vec<WdPostJobRow> =
            jobs.iter().filter(|j| j.round == round).cloned().collect();
        html.push_str(&table(
            &format!("Last WindowPoSt round ({round})"),
            &render::wdpost_lines(&round_jobs, now),
            None,
            |_| String::new(),
        ));
    }
    html
}

async fn workers(dashboard: &Dashboard, admin: bool) -> Fragment {
    let entries = entries(dashboard).await?;
    let lines = render::ping_lines(&entries, unix_now(), dashboard.expiration);
    Ok(table(
        "Workers (util worker list)",
        &lines,
        Some("Actions"),
        |i| {
            let name = &entries[i].info.name;
            let mut cell = link(&format!("/worker/{}", segment(name)), "threads");
            if admin {
                cell.push_str(&button("Stop", "stop", &[("worker", name)]));
                cell.push_str(&button("Remove", "remove", &[("worker", name)]));
            }
            cell
        },
    ))
}

async fn worker_threads(dashboard: &Dashboard, name: &str, admin: bool) -> Fragment {
    let entry = dashboard
        .registry
        .entry(name)
        .await
        .map_err(|e| Refusal::new(503, format!("the worker registry cannot be read: {e}")))?
        .ok_or_else(|| Refusal::unknown_worker(name))?;
    let now = unix_now();
    let mut html = format!(
        "<p class=\"worker\">{} at {}, {}, last ping {} ago{}</p>",
        escape(name),
        escape(&entry.info.dest),
        escape(&entry.info.version),
        render::short_age(u64::try_from(now - entry.last_ping).unwrap_or(0)),
        if is_expired(dashboard, &entry, now) {
            " <strong class=\"bad\">(expired)</strong>"
        } else {
            ""
        }
    );
    let threads = match dashboard.fleet.threads(name).await {
        Ok(threads) => threads,
        Err(e) => {
            let _ = write!(html, "<p class=\"error\">{}</p>", escape(&e.message));
            return Ok(html);
        }
    };
    html.push_str(&table(
        "Threads (util worker info)",
        &render::info_lines(&threads),
        Some("Actions"),
        |i| thread_actions(name, &threads[i], admin),
    ));
    Ok(html)
}

/// A thread's history link and, for the admin token, its controls: pause, or resume at
/// a state of its plan; drain or undrain.
fn thread_actions(worker: &str, t: &ThreadInfo, admin: bool) -> String {
    let index = t.index.to_string();
    let mut cell = link(&format!("/events/{}/{index}", segment(worker)), "history");
    if !admin {
        return cell;
    }
    let fields = [("worker", worker), ("index", index.as_str())];
    if matches!(t.thread_state, ThreadState::Paused { .. }) {
        let id = format!("state-{}-{index}", segment(worker));
        let states: Vec<String> = t
            .plan
            .resumable_states()
            .iter()
            .map(ToString::to_string)
            .collect();
        cell.push_str(&select(
            &id,
            &format!("state to resume thread {index} at"),
            "current state",
            &states,
        ));
        let mut with = fields.to_vec();
        with.push(("with", &id));
        cell.push_str(&button("Resume", "resume", &with));
    } else {
        cell.push_str(&button("Pause", "pause", &fields));
    }
    if t.draining {
        cell.push_str(&button("Undrain", "undrain", &fields));
    } else {
        cell.push_str(&button("Drain", "drain", &fields));
    }
    cell
}

async fn events(dashboard: &Dashboard, query: &[(String, String)]) -> Fragment {
    let (Some(name), Some(index)) = (
        param(query, "name"),
        param(query, "index").and_then(|i| i.parse::<u64>().ok()),
    ) else {
        return Err(Refusal::new(
            400,
            "which thread? (name=…&index=…)".to_owned(),
        ));
    };
    // The browser's zone, so that times read as the operator's clock.
    let zone = param(query, "tz")
        .and_then(|tz| jiff::tz::TimeZone::get(tz).ok())
        .unwrap_or(jiff::tz::TimeZone::UTC);
    let entries = dashboard
        .fleet
        .events(name, index, EVENTS_SHOWN)
        .await
        .map_err(|e| Refusal::new(502, e.message))?;
    let now_ms = u64::try_from(jiff::Timestamp::now().as_millisecond()).unwrap_or(0);
    Ok(table(
        &format!("History of thread {index} of {name} (util worker events)"),
        &render::events_lines(&entries, now_ms, &zone),
        None,
        |_| String::new(),
    ))
}

fn sectors(dashboard: &Dashboard, admin: bool) -> Fragment {
    let chain = dashboard.chain()?;
    let sectors = chain.sectors();
    let lines = render::sectors_lines(&sectors);
    if !admin {
        return Ok(table(
            "Sectors (util sealer sectors list)",
            &lines,
            None,
            |_| String::new(),
        ));
    }
    Ok(table(
        "Sectors (util sealer sectors list)",
        &lines,
        Some("Actions"),
        |i| {
            let s = &sectors[i];
            let sector = format!("s-t0{}-{}", s.miner, s.number);
            let mut cell = button("Rebuild", "rebuild", &[("sector", &sector)]);
            if !s.pieces.is_empty() {
                let id = format!("piece-{sector}");
                let pieces: Vec<String> = s.pieces.iter().map(|p| p.cid.clone()).collect();
                cell.push_str(&select(&id, "deal piece to unseal", "piece…", &pieces));
                cell.push_str(&button(
                    "Unseal",
                    "unseal",
                    &[("sector", &sector), ("with", &id)],
                ));
            }
            cell
        },
    ))
}
