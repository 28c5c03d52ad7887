//! Progress bars (indicatif) for the long steps, on stderr, hidden when stderr is not a
//! terminal or when asked to be quiet.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Makes progress bars, or hidden ones.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    draw: bool,
}

impl Progress {
    /// Bars drawn to stderr if it is a terminal and `quiet` is false.
    pub fn stderr(quiet: bool) -> Progress {
        Progress { draw: !quiet && std::io::stderr().is_terminal() }
    }
    /// Never draws.
    pub fn hidden() -> Progress {
        Progress { draw: false }
    }
    /// A bar of `len` steps labelled `msg`.
    pub fn bar(&self, len: u64, msg: &str) -> ProgressBar {
        let target = if self.draw { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        let style = ProgressStyle::with_template("{msg:>18} [{bar:32}] {pos}/{len} {elapsed_precise} (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = ProgressBar::with_draw_target(Some(len), target).with_style(style).with_message(msg.to_string());
        bar.tick();
        bar
    }
}
