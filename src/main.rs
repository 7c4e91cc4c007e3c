//! The `portico` command: `run` serves, `check` validates (like `nginx -t`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use portico::config::diag::Diagnostic;
use portico::config_file;

#[derive(Parser)]
#[command(name = "portico", version, about = "A front server for uWSGI apps that takes nginx's place")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve in the foreground until SIGTERM (graceful) or SIGINT.
    Run {
        /// The configuration file.
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
    },
    /// Validate a configuration file and report every problem found.
    Check {
        /// The configuration file.
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => match config_file::load(&config) {
            Ok((_, warnings)) => {
                print_all(&warnings);
                println!("{}: configuration ok", config.display());
                ExitCode::SUCCESS
            }
            Err(diags) => {
                print_all(&diags);
                eprintln!("{}: configuration has errors", config.display());
                ExitCode::FAILURE
            }
        },
        Command::Run { config } => {
            let shown = config.display().to_string();
            let loaded = match config_file::load(&config) {
                Ok((c, warnings)) => {
                    print_all(&warnings);
                    c
                }
                Err(diags) => {
                    print_all(&diags);
                    eprintln!("portico: not starting: {shown} has errors");
                    return ExitCode::FAILURE;
                }
            };
            match portico::server::run(loaded, &shown) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("portico: not starting: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn print_all(diags: &[Diagnostic]) {
    for d in diags {
        eprintln!("{d}");
    }
}
