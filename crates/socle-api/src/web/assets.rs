//! The embedded static files: the style sheet, and the hypervisor's script,
//! styles and map worker built by `build.rs` from `web/`. Each is served
//! under a name carrying a hash of its content, cached for a year.

use std::sync::LazyLock;

use sha2::{Digest, Sha256};

pub struct Asset {
    /// The name carrying the content hash, e.g. `socle-0123456789ab.js`.
    pub file: String,
    pub href: String,
    pub body: &'static [u8],
    pub mime: &'static str,
}

fn asset(stem: &str, ext: &str, body: &'static [u8], mime: &'static str) -> Asset {
    let file = format!("{stem}-{}.{ext}", &hex::encode(Sha256::digest(body))[..12]);
    Asset { href: format!("/static/{file}"), file, body, mime }
}

macro_rules! built {
    ($name:literal) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/web/", $name))
    };
}

pub static CSS: LazyLock<Asset> =
    LazyLock::new(|| asset("socle", "css", include_bytes!("../../static/socle.css"), "text/css; charset=utf-8"));
/// MapLibre's and uPlot's styles.
pub static APP_CSS: LazyLock<Asset> =
    LazyLock::new(|| asset("socle-app", "css", built!("socle-app.css"), "text/css; charset=utf-8"));
pub static JS: LazyLock<Asset> =
    LazyLock::new(|| asset("socle", "js", built!("socle.js"), "text/javascript; charset=utf-8"));
pub static MAP_WORKER: LazyLock<Asset> =
    LazyLock::new(|| asset("maplibre-worker", "js", built!("maplibre-worker.js"), "text/javascript; charset=utf-8"));

pub fn find(file: &str) -> Option<&'static Asset> {
    [&*CSS, &*APP_CSS, &*JS, &*MAP_WORKER].into_iter().find(|a| a.file == file)
}

/// axe-core, injected by the browser tests (not served).
pub const AXE_CORE_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/web/node_modules/axe-core/axe.min.js");
