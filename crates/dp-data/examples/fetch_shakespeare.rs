//! Fetches the Shakespeare corpus into the data cache (if needed) and describes it.
//!
//! ```text
//! cargo run -p dp-data --example fetch_shakespeare
//! DP_DATA_CACHE=/tmp/cache cargo run -p dp-data --example fetch_shakespeare
//! ```

use std::time::Instant;

use dp_data::shakespeare::ShakespeareFetcher;
use dp_data::text::CharVocabulary;

fn main() -> anyhow::Result<()> {
    let start = Instant::now();
    let fetcher = ShakespeareFetcher::from_env()?;
    let path = fetcher.fetch()?;
    let text = dp_data::text::text_from_file(&path)?;
    let vocabulary = CharVocabulary::from_text(&text)?;
    println!("{}", path.display());
    println!(
        "{} bytes, {} characters, {} lines, vocabulary of {} characters, sha256 {}",
        text.len(),
        text.chars().count(),
        text.lines().count(),
        vocabulary.len(),
        dp_data::sha256_file(&path)?
    );
    println!("ready in {:.2} s", start.elapsed().as_secs_f64());
    Ok(())
}
