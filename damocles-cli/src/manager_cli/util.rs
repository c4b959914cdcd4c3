//! `damocles-manager util …`: the registry, the mock chain's sectors, and any worker's
//! threads through its admin API.

use std::time::Duration;

use damocles_core::listing::ChainJobRow;
use damocles_core::sealer_api::Cid;
use damocles_core::{AdminError, AdminTransport, SectorId};
use damocles_rpc::manager::unix_now;
use damocles_rpc::{CallError, HttpAdminClient, ManagerClient, Timeouts};
use serde::Serialize;

use crate::bulk::{self, Action, Selector, SelectorFlags};
use crate::exit::{self, CliError, ErrorKind};
use crate::render::{self, WdPostJobOutcome};

/// What every util command needs.
pub struct Context {
    /// The manager's address.
    pub manager: String,
    /// The manager's token.
    pub token: Option<String>,
    /// The workers' admin token.
    pub worker_token: Option<String>,
    /// Print JSON.
    pub json: bool,
}

impl Context {
    pub(super) fn print<T: Serialize>(&self, json: &T, text: impl FnOnce() -> String) -> u8 {
        if self.json {
            crate::exit::print_out(render::json(json));
        } else {
            crate::exit::print_out(text());
        }
        exit::OK
    }

    pub(super) fn fail(&self, error: CliError) -> u8 {
        render::failure(self.json, &error)
    }

    pub(super) fn manager_failed(&self, what: &str, error: CallError) -> u8 {
        let kind = ErrorKind::from(&error);
        let hint = if matches!(error, CallError::Unreachable { .. }) {
            " — is the manager running? (damocles-manager mock)"
        } else {
            ""
        };
        self.fail(CliError::new(
            kind,
            format!("{what}: manager {error}{hint}"),
        ))
    }

    fn manager(&self) -> Result<ManagerClient, u8> {
        self.manager_with(Timeouts::default())
    }

    /// A client of the manager whose calls may take as long as `timeouts` allow.
    pub(super) fn manager_with(&self, timeouts: Timeouts) -> Result<ManagerClient, u8> {
        ManagerClient::new(&self.manager, self.token.clone(), timeouts)
            .map_err(|e| self.fail(CliError::bad_input(format!("--listen: {e}"))))
    }

    /// The worker named `target` in the registry (`registered`), or at the address
    /// `target`.
    async fn worker(&self, target: &str) -> Result<(String, HttpAdminClient, bool), u8> {
        let manager = self.manager()?;
        let (dest, registered) = match manager.worker(target).await {
            Ok(Some(entry)) => (entry.info.dest, true),
            Ok(None) => (with_default_port(target), false),
            Err(e) => return Err(self.manager_failed("resolve worker dest", e)),
        };
        let client = HttpAdminClient::new(&dest, self.worker_token.clone(), Timeouts::default())
            .map_err(|e| {
                self.fail(CliError::bad_input(format!(
                    "'{target}' is neither a registered worker nor an address: {e}"
                )))
            })?;
        Ok((dest, client, registered))
    }

    /// The worker as [`Context::worker`] finds it, checked to answer when the registry
    /// does not know the name (so that a mistyped name is reported as one, exit 2, before
    /// anything is asked of it).
    async fn answering_worker(&self, target: &str) -> Result<(String, HttpAdminClient), u8> {
        let (dest, client, registered) = self.worker(target).await?;
        if !registered {
            if let Err(e) = client.list().await {
                return Err(self.worker_failed(target, &dest, false, &e));
            }
        }
        Ok((dest, client))
    }

    fn worker_failed(&self, target: &str, dest: &str, registered: bool, error: &AdminError) -> u8 {
        let mut message = render::remote_message(target, dest, &error.to_string());
        let mut kind = ErrorKind::from(error);
        if error.is_unreachable() && target != dest {
            if !registered {
                // Not in the registry: most likely a mistyped name.
                kind = ErrorKind::BadInput;
                message = format!(
                    "no worker named '{target}' has reported to this manager (see util worker list), and as a host: {message}"
                );
            } else {
                message.push_str(" (its last reported address)");
            }
        }
        self.fail(CliError::new(kind, message))
    }
}

/// `host` → `host:17890`; `host:port` as is.
fn with_default_port(target: &str) -> String {
    let has_port = target
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if has_port {
        target.to_owned()
    } else {
        format!("{target}:{}", damocles_sealing::config::DEFAULT_ADMIN_PORT)
    }
}

/// `util worker list`.
pub async fn worker_list(ctx: &Context, expiration: Duration) -> u8 {
    let manager = match ctx.manager() {
        Ok(manager) => manager,
        Err(code) => return code,
    };
    match manager.workers().await {
        Ok(entries) => {
            let now = unix_now();
            let judged: Vec<_> = entries
                .into_iter()
                .map(|e| e.judged(now, expiration))
                .collect();
            ctx.print(&judged, || render::ping_table(&judged, now, expiration))
        }
        Err(e) => ctx.manager_failed("rpc WorkerPingInfoList", e),
    }
}

/// `util worker info`.
pub async fn worker_info(ctx: &Context, target: &str) -> u8 {
    let (dest, client, registered) = match ctx.worker(target).await {
        Ok(found) => found,
        Err(code) => return code,
    };
    match client.list().await {
        Ok(threads) => ctx.print(&threads, || render::info_table(&threads)),
        Err(e) => ctx.worker_failed(target, &dest, registered, &e),
    }
}

/// The threads a `util worker pause|resume|drain|undrain` acts on.
#[derive(Debug, clap::Args)]
pub struct Threads {
    /// A registered worker name, or host[:port].
    pub worker: String,
    /// The thread's index.
    pub index: Option<u64>,
    #[command(flatten)]
    pub select: SelectorFlags,
}

/// `util worker pause|resume|drain|undrain`: one thread or every thread a selector picks.
pub async fn worker_act(ctx: &Context, threads: &Threads, action: Action) -> u8 {
    let target = threads.worker.as_str();
    let selector = match Selector::from_parts(threads.index, &threads.select) {
        Ok(selector) => selector,
        Err(unchosen) => return ctx.fail(CliError::bad_input(unchosen.to_string())),
    };
    let (dest, client) = match ctx.answering_worker(target).await {
        Ok(found) => found,
        Err(code) => return code,
    };
    let prefix = |message: &str| render::remote_message(target, &dest, message);
    let (text, code) = bulk::run(&client, &selector, &action, ctx.json, &prefix).await;
    crate::exit::print_out(&text);
    code
}

/// `util worker set-plan`.
pub async fn worker_set_plan(
    ctx: &Context,
    target: &str,
    index: u64,
    plan: damocles_core::Plan,
) -> u8 {
    let (dest, client) = match ctx.answering_worker(target).await {
        Ok(found) => found,
        Err(code) => return code,
    };
    let prefix = |message: &str| render::remote_message(target, &dest, message);
    let (text, code) = crate::worker_ops::set_plan(&client, index, plan, ctx.json, &prefix).await;
    crate::exit::print_out(&text);
    code
}

/// `util worker stop`.
pub async fn worker_stop(ctx: &Context, target: &str, mode: damocles_core::StopMode) -> u8 {
    let (dest, client) = match ctx.answering_worker(target).await {
        Ok(found) => found,
        Err(code) => return code,
    };
    let prefix = |message: &str| render::remote_message(target, &dest, message);
    let (text, code) = crate::worker_ops::stop(&client, mode, ctx.json, &prefix).await;
    crate::exit::print_out(&text);
    code
}

/// `util worker events`.
pub async fn worker_events(
    ctx: &Context,
    target: &str,
    index: u64,
    flags: &crate::events::EventsFlags,
) -> u8 {
    let (dest, client) = match ctx.answering_worker(target).await {
        Ok(found) => found,
        Err(code) => return code,
    };
    let prefix = |message: &str| render::remote_message(target, &dest, message);
    crate::events::show(&client, index, flags, ctx.json, &prefix).await
}

/// `util worker remove`.
pub async fn worker_remove(ctx: &Context, name: &str) -> u8 {
    let manager = match ctx.manager() {
        Ok(manager) => manager,
        Err(code) => return code,
    };
    match manager.worker(name).await {
        Ok(None) => ctx.fail(CliError::bad_input(format!(
            "worker info not found. please make sure the instance name is correct: {name}"
        ))),
        Ok(Some(_)) => match manager.remove(name).await {
            Ok(()) => ctx.print(&serde_json::json!({"removed": name}), || {
                format!("'{name}' removed\n")
            }),
            Err(e) => ctx.manager_failed("rpc WorkerPingInfoRemove", e),
        },
        Err(e) => ctx.manager_failed("rpc WorkerGetPingInfo", e),
    }
}

/// `util sealer sectors list`.
pub async fn sectors_list(ctx: &Context) -> u8 {
    let manager = match ctx.manager() {
        Ok(manager) => manager,
        Err(code) => return code,
    };
    match manager.chain_sectors().await {
        Ok(sectors) => ctx.print(&sectors, || render::sectors_table(&sectors)),
        Err(e) => ctx.manager_failed("rpc Damocles.ChainSectors", e),
    }
}

/// `util sealer sectors rebuild`.
pub async fn sector_rebuild(ctx: &Context, sector: SectorId) -> u8 {
    let manager = match ctx.manager() {
        Ok(manager) => manager,
        Err(code) => return code,
    };
    let asked = manager.request_rebuild(sector).await;
    job_created(
        ctx,
        asked,
        &format!("{sector} cannot be rebuilt"),
        "rpc Damocles.SectorRebuild",
    )
}

/// `util sealer sectors unseal`.
pub async fn sector_unseal(ctx: &Context, sector: SectorId, piece: &str, dest: &[String]) -> u8 {
    let piece = Cid {
        text: piece.to_owned(),
    };
    if let Err(e) = damocles_core::piece::comm_p(&piece) {
        return ctx.fail(CliError::bad_input(format!("piece: {e}")));
    }
    let manager = match ctx.manager() {
        Ok(manager) => manager,
        Err(code) => return code,
    };
    let asked = manager.request_unseal(sector, &piece, dest).await;
    let refused = format!("{} of {sector} cannot be unsealed", piece.text);
    job_created(ctx, asked, &refused, "rpc Damocles.SectorUnseal")
}

/// Prints a job the manager created, or why it did not (a refusal is bad input: not a
/// sector, not finished, a job already open).
fn job_created(
    ctx: &Context,
    asked: Result<ChainJobRow, CallError>,
    refused: &str,
    call: &str,
) -> u8 {
    match asked {
        Ok(job) => ctx.print(&job, || render::job_requested(&job)),
        Err(CallError::Rpc(e)) => {
            let kind = match e.code {
                damocles_rpc::jsonrpc::INTERNAL_ERROR => ErrorKind::Failed,
                damocles_rpc::jsonrpc::INVALID_PARAMS => ErrorKind::BadInput,
                _ => ErrorKind::Refused,
            };
            ctx.fail(CliError::new(kind, format!("{refused}: {}", e.message)))
        }
        Err(e) => ctx.manager_failed(call, e),
    }
}

/// `util sealer jobs list`.
pub async fn jobs_list(ctx: &Context) -> u8 {
    let manager = match ctx.manager() {
        Ok(manager) => manager,
        Err(code) => return code,
    };
    match manager.chain_jobs().await {
        Ok(jobs) => ctx.print(&jobs, || render::jobs_table(&jobs, unix_now())),
        Err(e) => ctx.manager_failed("rpc Damocles.ChainJobs", e),
    }
}

/// `util sealer wdpost list`.
pub async fn wdpost_list(ctx: &Context) -> u8 {
    let manager = match ctx.manager() {
        Ok(manager) => manager,
        Err(code) => return code,
    };
    match manager.wdpost_jobs().await {
        Ok(jobs) => ctx.print(&jobs, || render::wdpost_table(&jobs, unix_now())),
        Err(e) => ctx.manager_failed("rpc Damocles.WdPostJobs", e),
    }
}

/// What `util sealer wdpost` does to the jobs it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WdPostAction {
    /// Offer again from the start.
    Reset,
    /// Forget.
    Remove,
}

impl WdPostAction {
    /// The verb a refusal says.
    fn verb(self) -> &'static str {
        match self {
            WdPostAction::Reset => "reset",
            WdPostAction::Remove => "remove",
        }
    }

    /// The manager method it calls, as a failure names it.
    fn method(self) -> &'static str {
        match self {
            WdPostAction::Reset => "rpc Damocles.WdPoStResetJob",
            WdPostAction::Remove => "rpc Damocles.WdPoStRemoveJob",
        }
    }
}

/// `util sealer wdpost reset|remove <id>…`: each job in turn, a line (`--json`: a row)
/// each; a refusal does not stop the others, and the exit code is 2 when any was
/// refused. A removal of an id the manager does not list is `not found` (the original's
/// method answers the same either way, so the list is asked first).
pub async fn wdpost_act(ctx: &Context, action: WdPostAction, ids: &[String]) -> u8 {
    let manager = match ctx.manager() {
        Ok(manager) => manager,
        Err(code) => return code,
    };
    let listed: Vec<String> = match action {
        WdPostAction::Reset => Vec::new(),
        WdPostAction::Remove => match manager.wdpost_jobs().await {
            Ok(jobs) => jobs.into_iter().map(|job| job.id).collect(),
            Err(e) => return ctx.manager_failed("rpc Damocles.WdPostJobs", e),
        },
    };
    let mut done = Vec::new();
    for id in ids {
        let answer = match action {
            WdPostAction::Remove if !listed.contains(id) => Ok(WdPostJobOutcome::NotFound),
            WdPostAction::Remove => manager
                .remove_wdpost_job(id)
                .await
                .map(|()| WdPostJobOutcome::Removed),
            WdPostAction::Reset => manager
                .reset_wdpost_job(id)
                .await
                .map(|()| WdPostJobOutcome::Reset),
        };
        let (outcome, error) = match answer {
            Ok(outcome) => (outcome, None),
            Err(CallError::Rpc(e)) => (
                WdPostJobOutcome::Refused,
                Some(format!("cannot {} it: {}", action.verb(), e.message)),
            ),
            // The manager is gone: the other ids would fail the same way.
            Err(other) => return ctx.manager_failed(action.method(), other),
        };
        done.push(render::WdPostJobDone {
            id: id.clone(),
            done: outcome,
            error,
        });
    }
    ctx.print(&done, || render::wdpost_jobs_done(&done));
    if done.iter().any(|d| d.done == WdPostJobOutcome::Refused) {
        ErrorKind::Refused.code()
    } else {
        exit::OK
    }
}

/// `util sealer wdpost remove-all --really-do-it`: every WindowPoSt job removed.
pub async fn wdpost_remove_all(ctx: &Context, really: bool) -> u8 {
    let manager = match ctx.manager() {
        Ok(manager) => manager,
        Err(code) => return code,
    };
    let jobs = match manager.wdpost_jobs().await {
        Ok(jobs) => jobs,
        Err(e) => return ctx.manager_failed("rpc Damocles.WdPostJobs", e),
    };
    if !really {
        return ctx.fail(CliError::bad_input(format!(
            "pass --really-do-it to remove every WindowPoSt job ({} now); nothing changed",
            jobs.len()
        )));
    }
    let ids: Vec<String> = jobs.into_iter().map(|job| job.id).collect();
    wdpost_act(ctx, WdPostAction::Remove, &ids).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_bare_host_gets_the_default_port() {
        assert_eq!(super::with_default_port("10.0.0.2"), "10.0.0.2:17890");
        assert_eq!(super::with_default_port("10.0.0.2:1"), "10.0.0.2:1");
        assert_eq!(super::with_default_port("worker-a"), "worker-a:17890");
    }
}
