//! The benchmarks of BENCHMARKS.md.

fn main() -> std::process::ExitCode {
    damocles_cli::bench::main_impl()
}
