//! Reading a rules file from disk: the shell around the pure [`Rules::parse`].

use std::path::Path;

use crate::rules::{Rules, RulesError};

/// Reads, validates and compiles a rules file.
pub fn load(path: &Path) -> Result<Rules, RulesError> {
    let bytes = std::fs::read(path).map_err(|e| RulesError {
        file: path.to_path_buf(),
        location: "file".into(),
        problem: format!("cannot read: {e}"),
        fix: "pass an existing rules file (--rules FILE or LEADSCORE_RULES); examples/rules.toml is a starting point".into(),
    })?;
    Rules::parse(path, &bytes)
}
