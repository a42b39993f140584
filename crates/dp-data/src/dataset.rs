//! The in-memory labelled data set every loader and generator returns.

use ndarray::{Array1, Array2, ArrayView4, Axis};

use crate::error::{DataError, Result};

/// Channels, height and width of each example when the features are images.
///
/// Features are stored channel-major (`c x h x w`, as IDX and CIFAR-10 store them), so the
/// row of an example reshapes to this shape without copying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageShape {
    /// Number of colour channels (1 for MNIST, 3 for CIFAR-10).
    pub channels: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
}

impl ImageShape {
    /// Number of features of one image (`channels * height * width`).
    #[must_use]
    pub fn num_features(&self) -> usize {
        self.channels * self.height * self.width
    }
}

/// A labelled classification data set: an `n x d` feature matrix and `n` class labels.
///
/// Image pixels are scaled to `[0, 1]`. A value of this type is valid by construction: the
/// number of rows equals the number of labels, every label is below `num_classes`, and an
/// image shape, when present, multiplies out to `d`.
///
/// # Examples
/// ```
/// use dp_data::Dataset;
/// use ndarray::array;
///
/// let data = Dataset::new(array![[0.0, 1.0], [0.5, 0.5]], vec![1, 0], 2)?;
/// assert_eq!(data.len(), 2);
/// assert_eq!(data.class_counts(), vec![1, 1]);
/// # Ok::<(), dp_data::DataError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    features: Array2<f32>,
    labels: Vec<usize>,
    num_classes: usize,
    image_shape: Option<ImageShape>,
}

impl Dataset {
    /// A data set of plain feature vectors.
    ///
    /// # Errors
    /// [`DataError::InvalidParameter`] if the number of rows differs from the number of labels,
    /// `num_classes` is zero, or a label is not below `num_classes`.
    pub fn new(features: Array2<f32>, labels: Vec<usize>, num_classes: usize) -> Result<Self> {
        if features.nrows() != labels.len() {
            return Err(DataError::invalid(
                "labels",
                labels.len(),
                format!("the feature matrix has {} rows", features.nrows()),
            ));
        }
        if num_classes == 0 {
            return Err(DataError::invalid("num_classes", 0, "must be at least 1"));
        }
        if let Some((example, &label)) = labels
            .iter()
            .enumerate()
            .find(|&(_, &label)| label >= num_classes)
        {
            return Err(DataError::invalid(
                "labels",
                label,
                format!("label of example {example} is not below num_classes = {num_classes}"),
            ));
        }
        Ok(Self {
            features,
            labels,
            num_classes,
            image_shape: None,
        })
    }

    /// A data set of images, each row a `channels x height x width` image.
    ///
    /// # Errors
    /// As [`Dataset::new`], and [`DataError::InvalidParameter`] if the shape does not multiply
    /// out to the number of columns.
    pub fn with_image_shape(
        features: Array2<f32>,
        labels: Vec<usize>,
        num_classes: usize,
        image_shape: ImageShape,
    ) -> Result<Self> {
        if image_shape.num_features() != features.ncols() {
            return Err(DataError::invalid(
                "image_shape",
                format!("{image_shape:?}"),
                format!("the feature matrix has {} columns", features.ncols()),
            ));
        }
        let mut data = Self::new(features, labels, num_classes)?;
        data.image_shape = Some(image_shape);
        Ok(data)
    }

    /// Number of examples.
    #[must_use]
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no examples.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of features per example (`d`).
    #[must_use]
    pub fn num_features(&self) -> usize {
        self.features.ncols()
    }

    /// Number of classes; every label is below it.
    #[must_use]
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// The `n x d` feature matrix.
    #[must_use]
    pub fn features(&self) -> &Array2<f32> {
        &self.features
    }

    /// The class label of each example.
    #[must_use]
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// The labels as an ndarray vector.
    #[must_use]
    pub fn labels_array(&self) -> Array1<usize> {
        Array1::from(self.labels.clone())
    }

    /// The image shape, when the features are images.
    #[must_use]
    pub fn image_shape(&self) -> Option<ImageShape> {
        self.image_shape
    }

    /// The features as an `n x c x h x w` view, when they are images (for convolutional models).
    #[must_use]
    pub fn images(&self) -> Option<ArrayView4<'_, f32>> {
        let shape = self.image_shape?;
        self.features
            .view()
            .into_shape_with_order((self.len(), shape.channels, shape.height, shape.width))
            .ok()
    }

    /// How many examples each class has (index = class).
    #[must_use]
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes];
        for &label in &self.labels {
            counts[label] += 1;
        }
        counts
    }

    /// The examples at `indices`, in that order (repeats allowed).
    ///
    /// # Errors
    /// [`DataError::InvalidParameter`] if an index is not below [`Dataset::len`].
    pub fn select(&self, indices: &[usize]) -> Result<Self> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(DataError::invalid(
                "indices",
                bad,
                format!("the data set has {} examples", self.len()),
            ));
        }
        Ok(Self {
            features: self.features.select(Axis(0), indices),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            num_classes: self.num_classes,
            image_shape: self.image_shape,
        })
    }

    /// Splits into parts: features, labels, number of classes, image shape.
    #[must_use]
    pub fn into_parts(self) -> (Array2<f32>, Vec<usize>, usize, Option<ImageShape>) {
        (
            self.features,
            self.labels,
            self.num_classes,
            self.image_shape,
        )
    }

    /// Mutable access for canary insertion, which keeps every invariant (labels stay in range).
    pub(crate) fn parts_mut(&mut self) -> (&mut Array2<f32>, &mut Vec<usize>) {
        (&mut self.features, &mut self.labels)
    }
}

/// A standard train/test pair, as the `load_*` functions of a data directory return it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainTest {
    /// The training split.
    pub train: Dataset,
    /// The test split.
    pub test: Dataset,
}

#[cfg(test)]
mod tests {
    use ndarray::array;

    use super::*;

    #[test]
    fn rejects_inconsistent_parts() {
        assert!(Dataset::new(array![[0.0], [1.0]], vec![0], 2).is_err());
        assert!(Dataset::new(array![[0.0]], vec![2], 2).is_err());
        assert!(Dataset::new(array![[0.0]], vec![0], 0).is_err());
        let shape = ImageShape {
            channels: 1,
            height: 2,
            width: 2,
        };
        assert!(Dataset::with_image_shape(array![[0.0, 1.0, 2.0]], vec![0], 1, shape).is_err());
    }

    #[test]
    fn images_view_reshapes_rows() {
        let shape = ImageShape {
            channels: 1,
            height: 2,
            width: 2,
        };
        let data = Dataset::with_image_shape(
            array![[0.0, 0.1, 0.2, 0.3], [1.0, 1.1, 1.2, 1.3]],
            vec![0, 1],
            2,
            shape,
        )
        .unwrap();
        let images = data.images().unwrap();
        assert_eq!(images.shape(), &[2, 1, 2, 2]);
        assert_eq!(images[[1, 0, 1, 0]], 1.2);
    }

    #[test]
    fn select_picks_rows_and_labels() {
        let data = Dataset::new(array![[0.0], [1.0], [2.0]], vec![0, 1, 2], 3).unwrap();
        let picked = data.select(&[2, 0]).unwrap();
        assert_eq!(picked.labels(), &[2, 0]);
        assert_eq!(picked.features(), &array![[2.0], [0.0]]);
        assert!(data.select(&[3]).is_err());
    }
}
