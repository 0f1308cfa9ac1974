//! Records the target triple, so the agent can ask the server for releases
//! built for it (`version::TARGET`).

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=OUTPOST_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
