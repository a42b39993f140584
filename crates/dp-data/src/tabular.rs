//! CSV files with a header row, numeric and categorical columns, and a class label column.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use ndarray::Array2;

use crate::dataset::Dataset;
use crate::error::{DataError, Result};

/// How a categorical column becomes features.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CategoricalEncoding {
    /// One 0/1 feature per category (named `column=value`).
    OneHot,
    /// One feature holding the category's index (as a float).
    Index,
}

/// How a feature column is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// A finite number, used as it is (scale it yourself if the model needs it).
    Numeric,
    /// A value from a finite set; categories are indexed in sorted order of their text.
    Categorical(CategoricalEncoding),
}

/// Which columns of a CSV file to read, by header name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TabularSpec {
    /// The column holding the class; classes are indexed in sorted order of their text.
    pub label_column: String,
    /// The feature columns, in the order their features appear; other columns are ignored.
    pub feature_columns: Vec<(String, ColumnKind)>,
}

/// A CSV file read into a [`Dataset`], with the names that explain its columns.
#[derive(Debug, Clone, PartialEq)]
pub struct TabularData {
    /// The features and class labels.
    pub dataset: Dataset,
    /// The name of each feature column of `dataset`.
    pub feature_names: Vec<String>,
    /// The text of each class, by label.
    pub class_names: Vec<String>,
    /// The categories of each categorical column, by index.
    pub categories: BTreeMap<String, Vec<String>>,
}

/// Reads a CSV file with a header row.
///
/// # Errors
/// [`DataError::Io`] if the file cannot be read, [`DataError::Malformed`] naming the line and
/// column for a missing column, a row of the wrong length, an empty value or a value that is
/// not a finite number.
pub fn load_csv(file: impl AsRef<Path>, spec: &TabularSpec) -> Result<TabularData> {
    let file = file.as_ref();
    let reader = std::fs::File::open(file).map_err(|e| DataError::io(file, e))?;
    parse_csv(reader, file, spec)
}

/// Reads CSV from a reader; `file` only names the source in errors.
///
/// # Errors
/// As [`load_csv`].
///
/// # Examples
/// ```
/// use dp_data::tabular::{CategoricalEncoding, ColumnKind, TabularSpec, parse_csv};
///
/// let csv = "age,colour,label\n30,red,yes\n41,blue,no\n";
/// let spec = TabularSpec {
///     label_column: "label".into(),
///     feature_columns: vec![
///         ("age".into(), ColumnKind::Numeric),
///         ("colour".into(), ColumnKind::Categorical(CategoricalEncoding::OneHot)),
///     ],
/// };
/// let data = parse_csv(csv.as_bytes(), "people.csv".as_ref(), &spec)?;
/// assert_eq!(data.feature_names, ["age", "colour=blue", "colour=red"]);
/// assert_eq!(data.dataset.features(), &ndarray::array![[30.0, 0.0, 1.0], [41.0, 1.0, 0.0]]);
/// assert_eq!(data.class_names, ["no", "yes"]);
/// assert_eq!(data.dataset.labels(), &[1, 0]);
/// # Ok::<(), dp_data::DataError>(())
/// ```
pub fn parse_csv(reader: impl Read, file: &Path, spec: &TabularSpec) -> Result<TabularData> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(reader);
    let headers = csv.headers().map_err(|e| csv_error(file, &e))?.clone();
    let position = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| {
                DataError::malformed(file, format!("no column named {name:?} in the header"))
            })
    };
    let label_position = position(&spec.label_column)?;
    let feature_positions = spec
        .feature_columns
        .iter()
        .map(|(name, _)| position(name))
        .collect::<Result<Vec<_>>>()?;

    let mut rows: Vec<(u64, csv::StringRecord)> = Vec::new();
    for record in csv.records() {
        let record = record.map_err(|e| csv_error(file, &e))?;
        let line = record.position().map_or(0, csv::Position::line);
        rows.push((line, record));
    }
    let value = |line: u64, record: &csv::StringRecord, column: usize| -> Result<String> {
        let text = record.get(column).unwrap_or("").trim();
        if text.is_empty() {
            return Err(DataError::malformed(
                file,
                format!("line {line}, column {:?}: empty value", &headers[column]),
            ));
        }
        Ok(text.to_owned())
    };

    let (class_names, labels) = index_values(&rows, label_position, &value)?;
    let mut categories = BTreeMap::new();
    let mut feature_names = Vec::new();
    let mut columns: Vec<Vec<f32>> = Vec::new();
    for ((name, kind), &column) in spec.feature_columns.iter().zip(&feature_positions) {
        match kind {
            ColumnKind::Numeric => {
                let mut numbers = Vec::with_capacity(rows.len());
                for (line, record) in &rows {
                    let text = value(*line, record, column)?;
                    match text.parse::<f32>() {
                        Ok(x) if x.is_finite() => numbers.push(x),
                        _ => {
                            return Err(DataError::malformed(
                                file,
                                format!(
                                    "line {line}, column {name:?}: {text:?} is not a finite number"
                                ),
                            ));
                        }
                    }
                }
                feature_names.push(name.clone());
                columns.push(numbers);
            }
            ColumnKind::Categorical(encoding) => {
                let (names, indices) = index_values(&rows, column, &value)?;
                match encoding {
                    CategoricalEncoding::Index => {
                        feature_names.push(name.clone());
                        columns.push(indices.iter().map(|&i| i as f32).collect());
                    }
                    CategoricalEncoding::OneHot => {
                        for (k, category) in names.iter().enumerate() {
                            feature_names.push(format!("{name}={category}"));
                            columns.push(
                                indices
                                    .iter()
                                    .map(|&i| if i == k { 1.0 } else { 0.0 })
                                    .collect(),
                            );
                        }
                    }
                }
                categories.insert(name.clone(), names);
            }
        }
    }
    let features = Array2::from_shape_fn((rows.len(), columns.len()), |(i, j)| columns[j][i]);
    let num_classes = class_names.len().max(1);
    let dataset = Dataset::new(features, labels, num_classes)?;
    Ok(TabularData {
        dataset,
        feature_names,
        class_names,
        categories,
    })
}

/// The sorted distinct values of a column and each row's index among them.
fn index_values(
    rows: &[(u64, csv::StringRecord)],
    column: usize,
    value: &impl Fn(u64, &csv::StringRecord, usize) -> Result<String>,
) -> Result<(Vec<String>, Vec<usize>)> {
    let texts = rows
        .iter()
        .map(|(line, record)| value(*line, record, column))
        .collect::<Result<Vec<_>>>()?;
    let mut names = texts.clone();
    names.sort_unstable();
    names.dedup();
    let index: BTreeMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let indices = texts.iter().map(|t| index[t.as_str()]).collect();
    Ok((names, indices))
}

fn csv_error(file: &Path, e: &csv::Error) -> DataError {
    match e.kind() {
        csv::ErrorKind::Io(io) => {
            DataError::io(file, std::io::Error::new(io.kind(), io.to_string()))
        }
        _ => DataError::malformed(file, format!("CSV: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: ColumnKind) -> TabularSpec {
        TabularSpec {
            label_column: "y".into(),
            feature_columns: vec![("x".into(), kind)],
        }
    }

    fn parse(csv: &str, kind: ColumnKind) -> Result<TabularData> {
        parse_csv(csv.as_bytes(), Path::new("t.csv"), &spec(kind))
    }

    #[test]
    fn index_encoding_and_quoted_fields() {
        let data = parse(
            "x,y\n\"b, quoted\",1\na,0\n",
            ColumnKind::Categorical(CategoricalEncoding::Index),
        )
        .unwrap();
        assert_eq!(data.categories["x"], ["a", "b, quoted"]);
        assert_eq!(data.dataset.features(), &ndarray::array![[1.0], [0.0]]);
        assert_eq!(data.dataset.labels(), &[1, 0]);
    }

    #[test]
    fn errors_name_line_and_column() {
        let message = |csv: &str| parse(csv, ColumnKind::Numeric).unwrap_err().to_string();
        assert_eq!(
            message("x,y\n1,a\nabc,b\n"),
            "t.csv: line 3, column \"x\": \"abc\" is not a finite number"
        );
        assert_eq!(
            message("x,y\n1,a\n,b\n"),
            "t.csv: line 3, column \"x\": empty value"
        );
        assert!(message("x,y\ninf,a\n").contains("not a finite number"));
        assert!(message("z,y\n1,a\n").contains("no column named \"x\""));
        assert!(message("x,y\n1,a\n2\n").starts_with("t.csv: CSV:"));
    }
}
