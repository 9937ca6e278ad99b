//! `handoff completions <shell>` and `handoff man`: generated from the clap definitions, so they never
//! drift from the real command line.

use crate::cli::Cli;
use crate::exit;
use clap::CommandFactory;

/// Prints the completion script for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) -> i32 {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "handoff", &mut script);
    crate::output::write_bytes(&script);
    exit::OK
}

/// Prints the man page (roff): the top-level page followed by one section per subcommand.
pub fn man() -> anyhow::Result<i32> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    crate::output::write_bytes(&out);
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_gets_a_script_naming_the_subcommands() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
            clap_complete::Shell::PowerShell,
        ] {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "handoff", &mut buf);
            let s = String::from_utf8(buf).unwrap();
            for sub in ["send", "sync", "hooks", "doctor"] {
                assert!(s.contains(sub), "{shell}: no {sub}");
            }
        }
    }

    #[test]
    fn man_page_is_roff_with_the_commands() {
        let mut out = Vec::new();
        clap_mangen::Man::new(Cli::command()).render(&mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with(".ie") || s.contains(".TH handoff"), "{}", &s[..200.min(s.len())]);
        assert!(s.contains("hooks") && s.contains("doctor"));
    }
}
