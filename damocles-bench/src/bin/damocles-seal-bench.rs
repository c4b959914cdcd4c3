//! Seals 2KiB sectors through the proof backend and times each step, C2 on GPU and CPU.

fn main() -> std::process::ExitCode {
    damocles_bench::seal::main_impl()
}
