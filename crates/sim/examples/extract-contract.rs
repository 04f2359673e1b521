//! Writes the contract the repository keeps (`contract/`) from the vendors' API files.
//!
//! `cargo run -p byoc-sim --example extract-contract [SPECS_DIR [OUT_DIR]]`; by default the
//! vendors' files are `shared/specs` beside the repository and the output is its `contract/`.
//! Files the extract no longer produces are removed; `contract/SOURCES.md` is kept.

use std::path::PathBuf;
use std::process::ExitCode;

use byoc_sim::contract::Specs;
use byoc_sim::contract::extract::extract;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let specs = args.next().map(PathBuf::from).or_else(Specs::vendor_files);
    let out = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../contract")));
    let Some(specs) = specs else {
        eprintln!("no vendor files found: pass the specs directory (shared/specs)");
        return ExitCode::from(2);
    };
    let files = match extract(&specs) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("cannot read the vendor files: {e}");
            return ExitCode::FAILURE;
        }
    };
    for dir in ["infobip", "salesforce"] {
        let _ = std::fs::remove_dir_all(out.join(dir));
    }
    for (path, text) in &files {
        let target = out.join(path);
        if let Some(parent) = target.parent()
            && let Err(e) = std::fs::create_dir_all(parent)
        {
            eprintln!("cannot create {}: {e}", parent.display());
            return ExitCode::FAILURE;
        }
        if let Err(e) = std::fs::write(&target, text) {
            eprintln!("cannot write {}: {e}", target.display());
            return ExitCode::FAILURE;
        }
    }
    let bytes: usize = files.values().map(String::len).sum();
    println!("wrote {} files ({bytes} bytes) to {} from {}", files.len(), out.display(), specs.display());
    ExitCode::SUCCESS
}
