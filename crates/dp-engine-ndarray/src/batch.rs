//! Batches and in-memory data sets.

use dp_engine::{EngineError, ExampleBatch, ExampleSource};
use ndarray::{Array2, Axis};

/// A batch of labelled examples; each example has `views_per_example` consecutive rows.
///
/// With one view per row this is an ordinary batch. With K views (augmentation multiplicity,
/// De et al. 2022) rows `i*K .. (i+1)*K` are the views of example i, whose loss and gradient are
/// the means over its views, so clipping applies to the averaged gradient.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    features: Array2<f32>,
    labels: Vec<usize>,
    views_per_example: usize,
}

impl Batch {
    /// A batch with one row per example.
    ///
    /// # Errors
    ///
    /// [`EngineError::ShapeMismatch`] if `labels.len()` differs from the number of rows.
    pub fn new(features: Array2<f32>, labels: Vec<usize>) -> Result<Self, EngineError> {
        Self::with_views(features, labels, 1)
    }

    /// A batch whose examples have `views_per_example` consecutive rows each; `labels` has one
    /// entry per row.
    ///
    /// # Errors
    ///
    /// [`EngineError::InvalidParameter`] if `views_per_example` is 0 or does not divide the row
    /// count; [`EngineError::ShapeMismatch`] if the label count differs from the row count.
    pub fn with_views(
        features: Array2<f32>,
        labels: Vec<usize>,
        views_per_example: usize,
    ) -> Result<Self, EngineError> {
        if views_per_example == 0 || !features.nrows().is_multiple_of(views_per_example) {
            return Err(EngineError::InvalidParameter {
                name: "views_per_example",
                value: views_per_example.to_string(),
                reason: "must be positive and divide the number of rows",
            });
        }
        if labels.len() != features.nrows() {
            return Err(EngineError::ShapeMismatch {
                what: "labels",
                expected: features.nrows(),
                actual: labels.len(),
            });
        }
        let features = features.as_standard_layout().into_owned();
        Ok(Self {
            features,
            labels,
            views_per_example,
        })
    }

    /// K augmented views of every example: each row is copied `views` times and `augment` is
    /// applied to every copy (with the example index), in order.
    ///
    /// # Errors
    ///
    /// [`EngineError::InvalidParameter`] if this batch already has several views or `views` is 0.
    pub fn augmented(
        &self,
        views: usize,
        mut augment: impl FnMut(usize, &mut [f32]),
    ) -> Result<Self, EngineError> {
        if self.views_per_example != 1 || views == 0 {
            return Err(EngineError::InvalidParameter {
                name: "views",
                value: views.to_string(),
                reason: "augment a batch with one view per example, into at least one view",
            });
        }
        let rows: Vec<usize> = (0..self.num_rows())
            .flat_map(|r| std::iter::repeat_n(r, views))
            .collect();
        let mut features = self.features.select(Axis(0), &rows);
        for (row_index, mut row) in features.axis_iter_mut(Axis(0)).enumerate() {
            let slice = row
                .as_slice_mut()
                .expect("rows of a freshly selected array are contiguous");
            augment(row_index / views, slice);
        }
        let labels = rows.iter().map(|&r| self.labels[r]).collect();
        Self::with_views(features, labels, views)
    }

    /// The features, one row per view.
    pub fn features(&self) -> &Array2<f32> {
        &self.features
    }

    /// The labels, one per row.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// Rows per example.
    pub fn views_per_example(&self) -> usize {
        self.views_per_example
    }

    /// Number of rows (examples times views).
    pub fn num_rows(&self) -> usize {
        self.features.nrows()
    }
}

impl ExampleBatch for Batch {
    fn num_examples(&self) -> usize {
        self.features.nrows() / self.views_per_example
    }
}

/// An in-memory labelled data set with one row per example.
#[derive(Clone, Debug, PartialEq)]
pub struct ArrayDataset {
    features: Array2<f32>,
    labels: Vec<usize>,
}

impl ArrayDataset {
    /// A data set of `features.nrows()` examples.
    ///
    /// # Errors
    ///
    /// [`EngineError::ShapeMismatch`] if the label count differs from the row count.
    pub fn new(features: Array2<f32>, labels: Vec<usize>) -> Result<Self, EngineError> {
        if labels.len() != features.nrows() {
            return Err(EngineError::ShapeMismatch {
                what: "labels",
                expected: features.nrows(),
                actual: labels.len(),
            });
        }
        Ok(Self { features, labels })
    }

    /// The features.
    pub fn features(&self) -> &Array2<f32> {
        &self.features
    }

    /// The labels.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }
}

impl ExampleSource for ArrayDataset {
    type Batch = Batch;

    fn num_examples(&self) -> usize {
        self.features.nrows()
    }

    fn gather(&self, indices: &[usize]) -> Result<Batch, EngineError> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.features.nrows()) {
            return Err(EngineError::ShapeMismatch {
                what: "example index bound",
                expected: self.features.nrows(),
                actual: bad,
            });
        }
        let features = self.features.select(Axis(0), indices);
        let labels = indices.iter().map(|&i| self.labels[i]).collect();
        Batch::new(features, labels)
    }
}
