//! The damocles manager.

fn main() -> std::process::ExitCode {
    damocles_cli::manager_cli::main_impl()
}
