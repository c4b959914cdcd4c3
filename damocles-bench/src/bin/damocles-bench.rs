//! The benchmarks of BENCHMARKS.md.

fn main() -> std::process::ExitCode {
    damocles_bench::main_impl()
}
