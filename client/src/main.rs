//! `peagectl`: the operator's command line for the Péage admin API. Parses the command
//! line (`cli`), runs the command (`cmd`), and turns the outcome into an exit code.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod cmd;
mod output;
mod wire;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // Like any Unix filter: a reader that goes away (`peagectl … | head`) ends us quietly,
    // where Rust's default would turn the failed write into a panic.
    // SAFETY: restoring the default disposition of SIGPIPE before any other thread runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = cli::Cli::parse();
    match cmd::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peagectl: {e}");
            ExitCode::FAILURE
        }
    }
}
