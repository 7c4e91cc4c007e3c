//! The `portico` command: `run` serves, `check` validates (like `nginx -t`), `explain`
//! traces a request's route, `reload|reopen|stop|upgrade` signal the running server,
//! `import-nginx` converts an nginx configuration.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use portico::config::diag::Diagnostic;
use portico::control::Control;
use portico::{config_file, preflight};

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
    /// Tell the route a request would take: the server block and why, each location
    /// looked at and why it won or lost, try_files candidates and the paths they map to,
    /// and the answer (the file, Portico's page, or the upstream).
    Explain {
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
        /// The Host header (default: the URL's host, else the first server_name).
        #[arg(long)]
        host: Option<String>,
        #[arg(long, default_value = "GET")]
        method: String,
        /// A path (/static/app.css) or http://host[:port]/path.
        url: String,
    },
    /// Ask the running server (the pid in `pid_file`) to read its configuration again
    /// (SIGHUP): requests in flight finish on the old one; an invalid one changes nothing
    /// (the errors go to the error log and stderr).
    Reload {
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
    },
    /// Ask the running server to hand over to a new process started from the binary's
    /// path, without dropping a connection (SIGUSR2): how a new binary is put in service.
    Upgrade {
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
    },
    /// Ask the running server (the pid in `pid_file`) to reopen its log files (SIGUSR1).
    Reopen {
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
    },
    /// Stop the running server at once (SIGINT), or with --graceful let requests in
    /// flight finish (SIGQUIT).
    Stop {
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
        #[arg(long)]
        graceful: bool,
    },
    /// Validate a configuration file and report every problem found, then look at this
    /// machine as the server will meet it (directories, symlinks, uWSGI sockets, units).
    /// Exit status: 0 nothing found, 1 the configuration has errors, 2 warnings only.
    Check {
        /// The configuration file.
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
        /// Only the configuration itself (for a machine that is not the target): exit 0
        /// with warnings, 1 with errors.
        #[arg(long)]
        syntax_only: bool,
        /// Print the findings as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// The systemd unit Portico runs under (default: portico.service's usual paths).
        #[arg(long, value_name = "FILE")]
        unit: Option<PathBuf>,
        /// uWSGI's ini, to compare its buffer-size with uwsgi_buffer_size.
        #[arg(long = "uwsgi-ini", value_name = "FILE")]
        uwsgi_ini: Option<PathBuf>,
    },
    /// Convert an nginx configuration (a site file, or a whole nginx.conf) into Portico's,
    /// each key commented with the nginx line it came from; print the traps found, what
    /// was absorbed and what could not be converted, and validate the result.
    /// Exit status: 0 all converted, 2 something was not (or the result is invalid),
    /// 1 the nginx input is malformed.
    #[command(name = "import-nginx")]
    ImportNginx {
        /// The nginx file.
        file: PathBuf,
        /// Where to write the Portico configuration (default: standard output).
        #[arg(short = 'o', long = "output", value_name = "OUT.toml")]
        output: Option<PathBuf>,
        /// nginx's prefix, which relative includes are read from (`/etc/nginx` on
        /// Debian); default: the including file's directory.
        #[arg(long, value_name = "DIR")]
        prefix: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Explain { config, host, method, url } => {
            let loaded = match config_file::load(&config) {
                Ok((c, _)) => c,
                Err(diags) => {
                    print_all(&diags);
                    return ExitCode::FAILURE;
                }
            };
            let question = portico::server::Question { method: &method, url: &url, host: host.as_deref() };
            match portico::server::explain(&loaded, &question) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("portico: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Reload { config } => control(Control::Reload, &config),
        Command::Upgrade { config } => control(Control::Upgrade, &config),
        Command::Reopen { config } => control(Control::Reopen, &config),
        Command::Stop { config, graceful } => {
            control(if graceful { Control::StopGracefully } else { Control::Stop }, &config)
        }
        Command::ImportNginx { file, output, prefix } => {
            import_nginx(&file, output.as_deref(), prefix.as_deref())
        }
        Command::Check { config, syntax_only, json, unit, uwsgi_ini } => {
            check(&config, syntax_only, json, &preflight::Options { unit, uwsgi_ini })
        }
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

/// `portico reopen|stop`: the configuration must load, for its `pid_file`.
fn control(what: Control, path: &Path) -> ExitCode {
    let config = match config_file::load(path) {
        Ok((c, _)) => c,
        Err(diags) => {
            print_all(&diags);
            eprintln!("portico: {} has errors; its pid_file cannot be trusted", path.display());
            return ExitCode::FAILURE;
        }
    };
    match portico::control::send(what, &config, path) {
        Ok(pid) => {
            eprintln!("portico: sent {what:?} to process {pid}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("portico: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `portico check`: the configuration, then (unless `syntax_only`) the machine.
fn check(path: &Path, syntax_only: bool, json: bool, options: &preflight::Options) -> ExitCode {
    let (diags, findings, valid) = match config_file::load(path) {
        Ok((config, warnings)) => {
            let findings = if syntax_only { Vec::new() } else { preflight::check(&config, path, options) };
            (warnings, findings, true)
        }
        Err(diags) => (diags, Vec::new(), false),
    };
    let code = match (valid, diags.is_empty() && findings.is_empty()) {
        (false, _) => 1,
        (true, true) => 0,
        (true, false) if syntax_only => 0,
        (true, false) => 2,
    };
    if json {
        let report = serde_json::json!({ "configuration": diags, "findings": findings, "exit": code });
        println!("{report}");
    } else {
        print_all(&diags);
        let shown = path.display();
        for f in &findings {
            eprintln!("{shown}: warning: {f}");
        }
        match code {
            0 => println!("{shown}: configuration ok"),
            1 => eprintln!("{shown}: configuration has errors"),
            _ => println!("{shown}: configuration ok; {} warning(s) above", diags.len() + findings.len()),
        }
    }
    ExitCode::from(code)
}

fn print_all(diags: &[Diagnostic]) {
    for d in diags {
        eprintln!("{d}");
    }
}

/// `portico import-nginx`: the TOML to `output` (or stdout), the report to stderr.
fn import_nginx(file: &Path, output: Option<&Path>, prefix: Option<&Path>) -> ExitCode {
    let shown =
        output.map_or_else(|| "(the converted configuration)".to_string(), |o| o.display().to_string());
    let imported = match portico::import_nginx::import(file, prefix, &shown) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("portico import-nginx: {e}");
            return ExitCode::FAILURE;
        }
    };
    match output {
        Some(out) => {
            if let Err(e) = std::fs::write(out, &imported.toml) {
                eprintln!("portico import-nginx: cannot write {}: {e}", out.display());
                return ExitCode::FAILURE;
            }
        }
        None => print!("{}", imported.toml),
    }
    eprint!("{}", imported.report);
    if imported.incomplete {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}
