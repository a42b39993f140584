//! Loads an MNIST-layout directory (the shipped subset by default) and prints its shapes,
//! class counts and the load time.
//!
//! ```text
//! cargo run --release -p dp-data --example mnist_info [-- DIR]
//! ```

use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .map_or_else(dp_data::shipped_mnist_dir, Into::into);
    let start = Instant::now();
    let data = dp_data::load_mnist(&dir)?;
    let elapsed = start.elapsed();
    for (name, split) in [("train", &data.train), ("test", &data.test)] {
        println!(
            "{name}: {} x {} features, image shape {:?}, class counts {:?}",
            split.len(),
            split.num_features(),
            split.image_shape(),
            split.class_counts()
        );
    }
    println!(
        "load_mnist({}) took {:.1} ms",
        dir.display(),
        elapsed.as_secs_f64() * 1e3
    );
    Ok(())
}
