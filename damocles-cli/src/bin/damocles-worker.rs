//! The damocles sealing worker.

fn main() -> std::process::ExitCode {
    damocles_cli::worker_cli::main_impl()
}
