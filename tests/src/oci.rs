//! OCI images for the container target's tests, made and read with real OCI tools (`umoci`, `skopeo`; `scripts/setup`
//! installs them): a small base image to stack a package on, and unpacking an image to run what it holds.

use std::path::Path;
use std::process::{Command, Output};

/// Runs a tool that must be installed (`scripts/setup` installs it), failing with that hint otherwise.
pub fn tool(name: &str, args: &[&str]) -> Output {
    let out = Command::new(name)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{name} is not installed ({e}): run scripts/setup"));
    assert!(
        out.status.success(),
        "{name} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A small base image made by umoci in `dir`, standing in for a distroless base pulled with
/// `skopeo copy docker://... oci:...`: one layer with a marker file (`/etc/base-marker`) and an image config with
/// its own entrypoint, command and environment, which a packaged image must override or keep. Its reference
/// (`<layout>:base`), as `nimbus package --base` takes it.
pub fn base_image(dir: &Path) -> String {
    let layout = dir.join("layout");
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(dir).unwrap();
    let image = format!("{}:base", layout.display());
    tool("umoci", &["init", "--layout", &layout.to_string_lossy()]);
    tool("umoci", &["new", "--image", &image]);
    tool(
        "umoci",
        &["unpack", "--rootless", "--image", &image, &bundle.to_string_lossy()],
    );
    std::fs::create_dir_all(bundle.join("rootfs/etc")).unwrap();
    std::fs::write(bundle.join("rootfs/etc/base-marker"), "from the base\n").unwrap();
    tool("umoci", &["repack", "--image", &image, &bundle.to_string_lossy()]);
    tool(
        "umoci",
        &[
            "config",
            "--image",
            &image,
            "--config.entrypoint",
            "/bin/base",
            "--config.cmd",
            "base-arg",
            "--config.env",
            "PATH=/usr/bin:/bin",
            "--config.env",
            "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
            "--architecture",
            "amd64",
            "--os",
            "linux",
        ],
    );
    image
}

/// Unpacks the image `<layout>:<tag>` into the bundle `into` (`into/rootfs` is the container's file system,
/// `into/config.json` its runtime config), as a container runtime would before starting it.
pub fn unpack(layout: &Path, tag: &str, into: &Path) {
    tool(
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:{tag}", layout.display()),
            &into.to_string_lossy(),
        ],
    );
}
