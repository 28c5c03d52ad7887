//! The `triad` command. See the library's documentation (`triad::cli`) for the commands.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = triad::cli::parse();
    match triad::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.one_line());
            ExitCode::FAILURE
        }
    }
}
