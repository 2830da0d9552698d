//! Writes ballast's CRDs into a directory (default `crds/`), one `<group>_<plural>.yaml` file each.

use std::{path::PathBuf, process::ExitCode};

fn main() -> ExitCode {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "crds".to_string()));
    if let Err(error) = std::fs::create_dir_all(&dir) {
        eprintln!("failed to create {}: {error}", dir.display());
        return ExitCode::FAILURE;
    }
    for (name, crd) in ballast::api::crds::crd_files() {
        let path = dir.join(name);
        if let Err(error) = std::fs::write(&path, ballast::api::crds::crd_yaml(&crd)) {
            eprintln!("failed to write {}: {error}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}
