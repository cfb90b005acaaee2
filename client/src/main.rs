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
    let cli = cli::Cli::parse();
    match cmd::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peagectl: {e}");
            ExitCode::FAILURE
        }
    }
}
