//! The child's side: `damocles-worker processor <stage>`. It binds itself to its cpuset
//! and NUMA node, prints the ready line, then answers each request line on a thread of
//! its own, in whatever order they finish. Logs go to stderr; stdout carries the
//! protocol only.

use std::io::{self, BufRead, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use damocles_core::ProofStage;
use serde_json::value::RawValue;

use super::protocol::{ready_line, Request, Response};
use super::tasks::{
    AddPieces, ProcessorTask, SnapEncode, SnapProve, Transfer, Unseal, WindowPoSt, C2, PC1, PC2,
};
use super::{binding, EXTERNAL};

/// Why a processor could not serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The stage has no processor here.
    #[error("this worker has no {stage} processor (it has: {})", external_names())]
    Unsupported {
        /// The stage asked for.
        stage: ProofStage,
    },
    /// stdin or stdout failed.
    #[error("processor i/o: {0}")]
    Io(#[from] io::Error),
}

/// Serves `stage` on this process's stdin and stdout until stdin closes and every request
/// read is answered, after binding the process as the environment asks ([`binding`]). (A
/// worker's children die with it: it starts them with a parent-death signal.)
///
/// # Errors
/// [`ServeError::Unsupported`] for a stage without a processor; [`ServeError::Io`] when
/// stdin cannot be read or the ready line cannot be written.
pub fn serve_stage(stage: ProofStage) -> Result<(), ServeError> {
    if !EXTERNAL.contains(&stage) {
        return Err(ServeError::Unsupported { stage });
    }
    binding::bind_from_env();
    let input = io::stdin().lock();
    let output = io::stdout();
    let answering = match stage {
        ProofStage::AddPieces => serve::<AddPieces>(input, output),
        ProofStage::PC1 => serve::<PC1>(input, output),
        ProofStage::PC2 => serve::<PC2>(input, output),
        ProofStage::C2 => serve::<C2>(input, output),
        ProofStage::SnapEncode => serve::<SnapEncode>(input, output),
        ProofStage::SnapProve => serve::<SnapProve>(input, output),
        ProofStage::Unseal => serve::<Unseal>(input, output),
        ProofStage::WindowPost => serve::<WindowPoSt>(input, output),
        ProofStage::Transfer => serve::<Transfer>(input, output),
        stage => return Err(ServeError::Unsupported { stage }),
    }?;
    for thread in answering {
        let _ = thread.join();
    }
    Ok(())
}

fn external_names() -> String {
    EXTERNAL.map(|s| s.to_string()).join(", ")
}

/// Prints `P`'s ready line to `output`, then reads requests from `input` until it ends,
/// each answered on a thread of its own. Returns when `input` ends, with the threads
/// still answering (join them to wait for every answer).
///
/// # Errors
/// When `input` cannot be read or the ready line cannot be written.
pub fn serve<P: ProcessorTask>(
    input: impl BufRead,
    output: impl Write + Send + 'static,
) -> io::Result<Vec<JoinHandle<()>>> {
    let output = Arc::new(Mutex::new(output));
    {
        let mut out = output.lock().unwrap_or_else(|e| e.into_inner());
        writeln!(out, "{}", ready_line(P::STAGE))?;
        out.flush()?;
    }
    tracing::debug!("{} processor (pid {}) ready", P::STAGE, std::process::id());
    let mut answering = Vec::new();
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let request: Request<Box<RawValue>> = match serde_json::from_str(&line) {
            Ok(request) => request,
            Err(e) => {
                let shown: String = line.chars().take(200).collect();
                tracing::error!("not a request ({e}), ignored: {shown}");
                continue;
            }
        };
        let output = output.clone();
        answering.retain(|h: &JoinHandle<()>| !h.is_finished());
        answering.push(
            std::thread::Builder::new()
                .name(format!("{}-{}", P::STAGE, request.id))
                .spawn(move || answer::<P>(request, &output))?,
        );
    }
    Ok(answering)
}

fn answer<P: ProcessorTask>(request: Request<Box<RawValue>>, output: &Mutex<impl Write>) {
    let id = request.id;
    let stage = P::STAGE;
    let pid = std::process::id();
    let started = Instant::now();
    tracing::info!("{stage} processor (pid {pid}): task {id} started");
    let result = serde_json::from_str::<P>(request.task.get())
        .map_err(|e| {
            let article = if stage.to_string().starts_with('a') {
                "an"
            } else {
                "a"
            };
            format!("not {article} {stage} task: {e}")
        })
        .and_then(
            |task| match catch_unwind(AssertUnwindSafe(|| task.execute())) {
                Ok(result) => result.map_err(|failure| failure.to_string()),
                Err(panic) => Err(format!(
                    "{stage} panicked: {}",
                    crate::panics::message(&*panic)
                )),
            },
        );
    let seconds = started.elapsed().as_secs_f64();
    let response = match result {
        Ok(output) => {
            tracing::info!("{stage} processor (pid {pid}): task {id} finished in {seconds:.3}s");
            Response {
                id,
                err_msg: None,
                output: Some(output),
            }
        }
        Err(message) => {
            tracing::error!(
                "{stage} processor (pid {pid}): task {id} failed after {seconds:.3}s: {message}"
            );
            Response {
                id,
                err_msg: Some(message),
                output: None,
            }
        }
    };
    let written = serde_json::to_string(&response)
        .map_err(io::Error::other)
        .and_then(|line| {
            let mut out = output.lock().unwrap_or_else(|e| e.into_inner());
            writeln!(out, "{line}")?;
            out.flush()
        });
    if let Err(e) = written {
        tracing::error!("{stage} processor (pid {pid}): task {id}: cannot write its answer: {e}");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A `Write` whose bytes the test reads after the threads are done.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_ready_line_comes_first_and_each_request_is_answered_by_id() {
        let input =
            "{\"id\":7,\"task\":{\"cache_dir\":\"/x\"}}\nnot json\n\n{\"id\":8,\"task\":[]}\n";
        let output = Shared::default();
        for answering in serve::<PC2>(input.as_bytes(), output.clone()).expect("served") {
            answering.join().expect("answered");
        }
        let text = String::from_utf8(output.0.lock().expect("lock").clone()).expect("utf-8");
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("pc2 processor ready"));
        let mut answers: Vec<Response<serde_json::Value>> = lines
            .map(|l| serde_json::from_str(l).expect("an answer line"))
            .collect();
        answers.sort_by_key(|a| a.id);
        assert_eq!(
            answers.len(),
            2,
            "the unreadable line is not answered: {text}"
        );
        for (answer, id) in answers.iter().zip([7, 8]) {
            assert_eq!(answer.id, id);
            assert_eq!(answer.output, None);
            let message = answer.err_msg.as_deref().expect("an error");
            assert!(message.starts_with("not a pc2 task"), "{message}");
        }
    }

    #[test]
    fn a_stage_without_a_processor_is_refused() {
        let e = serve_stage(ProofStage::TreeD).expect_err("tree_d runs in-process");
        assert_eq!(
            e.to_string(),
            "this worker has no tree_d processor \
             (it has: add_pieces, pc1, pc2, c2, snap_encode, snap_prove, unseal, window_post, \
             transfer)"
        );
    }
}
