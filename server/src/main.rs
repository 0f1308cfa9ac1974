//! `outpost-server`: see `outpost_server::cli` for the commands.

fn main() -> std::process::ExitCode {
    outpost_server::cli::main()
}
