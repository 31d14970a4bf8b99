//! Builds the hypervisor's scripts and styles from `web/` (npm packages
//! bundled by esbuild) into `OUT_DIR/web`, where `src/web/assets.rs` embeds
//! them. Nothing is downloaded at run time; at build time only the npm
//! registry is used, through `npm ci` and the committed lock file.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let web = manifest.join("web");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("web");
    for watched in ["package.json", "package-lock.json", "build.mjs", "src"] {
        println!("cargo:rerun-if-changed=web/{watched}");
    }
    if needs_install(&web) {
        run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&web), "npm ci");
    }
    run(Command::new("node").arg("build.mjs").arg(&out).current_dir(&web), "node build.mjs");
}

/// `npm ci` when `node_modules` is missing or older than the lock file.
fn needs_install(web: &Path) -> bool {
    let modified = |p: PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(web.join("node_modules/.package-lock.json")), modified(web.join("package-lock.json"))) {
        (Some(installed), Some(lock)) => installed < lock,
        _ => true,
    }
}

fn run(cmd: &mut Command, what: &str) {
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{what} failed ({s}) in crates/socle-api/web: see its output above"),
        Err(e) => panic!(
            "{what} could not start ({e}). Building Socle's web interface needs Node.js and npm: \
             `apt-get install nodejs npm` on Debian (scripts/test and scripts/demo install them)"
        ),
    }
}
