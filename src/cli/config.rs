//! `dirsync config check`: the effective settings, each with where it came from, or every
//! problem that stops them from loading.

use std::path::Path;
use std::process::ExitCode;

use crate::settings::Settings;

pub(super) fn check(file: Option<&Path>) -> ExitCode {
    match Settings::load_with_origins(file) {
        Ok(loaded) => {
            println!("the settings are valid; effective values (secrets redacted):");
            print!("{}", loaded.describe());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{err}");
            ExitCode::FAILURE
        }
    }
}
