//! Every way a manifest can be wrong, with the exact error a user sees.
//!
//! `tests/invalid_manifests/NAME.toml` is a manifest with one mistake and `NAME.err` the full text of the
//! error it gives (`ManifestError`'s Display: file, line, key, message and hint), so a change to any message
//! shows up here as a diff of the text users read. A `.toml` without its `.err` (or the reverse) fails too.

use nimbus_core::Manifest;
use std::collections::BTreeSet;
use std::path::Path;

#[test]
fn each_invalid_manifest_fails_with_its_exact_error() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid_manifests");
    let mut manifests = BTreeSet::new();
    let mut errors = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        match name.rsplit_once('.') {
            Some((stem, "toml")) => manifests.insert(stem.to_owned()),
            Some((stem, "err")) => errors.insert(stem.to_owned()),
            _ => panic!("{name}: only NAME.toml and NAME.err belong in {}", dir.display()),
        };
    }
    assert_eq!(
        manifests.symmetric_difference(&errors).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "each NAME.toml needs its NAME.err, and each NAME.err its NAME.toml"
    );
    assert!(manifests.len() >= 30, "only {} cases", manifests.len());

    let mut wrong = Vec::new();
    for stem in &manifests {
        let text = std::fs::read_to_string(dir.join(format!("{stem}.toml"))).unwrap();
        let want = std::fs::read_to_string(dir.join(format!("{stem}.err"))).unwrap();
        let file = format!("{stem}.toml");
        // The error is one line; its file ends with a newline.
        let got = match Manifest::parse(&text, Path::new(&file), Path::new("/app")) {
            Ok(_) => "(no error: the manifest parsed)\n".to_string(),
            Err(e) => format!("{e}\n"),
        };
        if got != want {
            wrong.push((file, want, got));
        }
    }
    // Every difference at once, each as expected/got.
    let (want, got): (Vec<_>, Vec<_>) = wrong
        .into_iter()
        .map(|(file, want, got)| (format!("{file}: {want}"), format!("{file}: {got}")))
        .unzip();
    assert_eq!(got, want);
}
