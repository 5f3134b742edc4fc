//! Table files a user hands sluice outside a pipeline: CSV or Parquet read
//! whole or in chunks, Parquet written so that it appears only when complete.

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::errors::ParquetError;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What went wrong reading or writing a table file. Each variant names the
/// file; printed with its source chain (`{:#}` in anyhow) it reads as
/// `opening data.csv: No such file or directory`.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The file's extension is neither `.csv` nor `.parquet`.
    #[error("{}: give a .csv file (with a header row) or a .parquet file", .0.display())]
    UnknownFormat(PathBuf),
    /// The file could not be opened.
    #[error("opening {}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not readable as Parquet.
    #[error("reading {} as Parquet", path.display())]
    NotParquet {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: ParquetError,
    },
    /// The header (or the rows the column types are inferred from) of a
    /// CSV file could not be read.
    #[error("reading the header of {}", path.display())]
    CsvHeader {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: ArrowError,
    },
    /// A chunk of rows could not be read or decoded.
    #[error("reading {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: ArrowError,
    },
    /// The file holds a header but no rows.
    #[error("{} holds no rows", .0.display())]
    NoRows(PathBuf),
    /// Chunks of the file have schemas that cannot be concatenated.
    #[error("combining the rows of {}", path.display())]
    Concat {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: ArrowError,
    },
    /// A file could not be created, renamed or closed.
    #[error("writing {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The Parquet encoder refused a batch.
    #[error("writing {} as Parquet", path.display())]
    Encode {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: ParquetError,
    },
}

/// The formats a table file can be in, told by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    /// Comma-separated values with a header row; column types inferred.
    Csv,
    /// Apache Parquet.
    Parquet,
}

impl TableFormat {
    /// The format of `path` from its extension (case-insensitive).
    pub fn of(path: &Path) -> Result<Self, TableError> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        match ext.as_deref() {
            Some("csv") => Ok(TableFormat::Csv),
            Some("parquet") => Ok(TableFormat::Parquet),
            _ => Err(TableError::UnknownFormat(path.to_path_buf())),
        }
    }
}

fn open(path: &Path) -> Result<File, TableError> {
    File::open(path).map_err(|source| TableError::Open {
        path: path.to_path_buf(),
        source,
    })
}

/// The columns of a CSV file (from its header) with the types inferred over
/// every row, a streaming pass. Quoted fields may hold commas and newlines.
pub fn infer_csv_schema(path: &Path) -> Result<Schema, TableError> {
    let (schema, _) = arrow_csv::reader::Format::default()
        .with_header(true)
        .infer_schema(BufReader::new(open(path)?), None)
        .map_err(|source| TableError::CsvHeader {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(schema)
}

/// A whole CSV (with a header; types inferred) or Parquet file as one
/// batch, for small files such as feedback labels. A file with no rows is
/// an error.
pub fn read_table(path: &Path) -> Result<RecordBatch, TableError> {
    let reader = ChunkReader::open(path, ChunkOptions::default())?;
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>()?;
    let Some(first) = batches.first() else {
        return Err(TableError::NoRows(path.to_path_buf()));
    };
    arrow_select::concat::concat_batches(&first.schema(), &batches).map_err(|source| {
        TableError::Concat {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// How much of a file there is to read, in the unit [`ChunkOptions::progress`]
/// counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    /// A Parquet file's row count (from its footer).
    Rows(u64),
    /// A CSV file's size in bytes.
    Bytes(u64),
}

/// The type a CSV column is read as, by column name; `None` keeps the
/// inferred type.
pub type ColumnTypes<'a> = &'a dyn Fn(&str) -> Option<DataType>;

/// Called with how much more was read (rows or bytes, see [`Total`]).
pub type Progress = Box<dyn FnMut(u64) + Send>;

/// How [`ChunkReader::open`] reads a file.
pub struct ChunkOptions<'a> {
    /// Rows per batch (at least 1).
    pub chunk_rows: usize,
    /// CSV only: column types to use instead of the inferred ones. Every
    /// column of a CSV read in chunks is nullable.
    pub column_types: Option<ColumnTypes<'a>>,
    /// Told what was read as it is read.
    pub progress: Option<Progress>,
}

impl Default for ChunkOptions<'_> {
    fn default() -> Self {
        ChunkOptions {
            chunk_rows: 8192,
            column_types: None,
            progress: None,
        }
    }
}

impl std::fmt::Debug for ChunkOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkOptions")
            .field("chunk_rows", &self.chunk_rows)
            .field("column_types", &self.column_types.is_some())
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

type Batches = Box<dyn Iterator<Item = Result<RecordBatch, TableError>> + Send>;

/// The batches of a CSV or Parquet file, `chunk_rows` rows at a time, so
/// that memory stays bounded whatever the file's size.
pub struct ChunkReader {
    total: Total,
    format: TableFormat,
    batches: Batches,
}

impl std::fmt::Debug for ChunkReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkReader")
            .field("total", &self.total)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl ChunkReader {
    /// Opens `path` (its format told by its extension). A CSV file is read
    /// twice: once to infer its column types, then for its rows.
    pub fn open(path: &Path, options: ChunkOptions<'_>) -> Result<Self, TableError> {
        let ChunkOptions {
            chunk_rows,
            column_types,
            progress,
        } = options;
        let format = TableFormat::of(path)?;
        let file = open(path)?;
        let owned = path.to_path_buf();
        let read_err = move |source| TableError::Read {
            path: owned.clone(),
            source,
        };
        match format {
            TableFormat::Parquet => {
                let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|source| {
                    TableError::NotParquet {
                        path: path.to_path_buf(),
                        source,
                    }
                })?;
                let rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
                let reader =
                    builder
                        .with_batch_size(chunk_rows.max(1))
                        .build()
                        .map_err(|source| TableError::NotParquet {
                            path: path.to_path_buf(),
                            source,
                        })?;
                let mut progress = progress;
                Ok(ChunkReader {
                    total: Total::Rows(rows),
                    format,
                    batches: Box::new(reader.map(move |r| {
                        let batch = r.map_err(&read_err)?;
                        if let Some(p) = progress.as_mut() {
                            p(batch.num_rows() as u64);
                        }
                        Ok(batch)
                    })),
                })
            }
            TableFormat::Csv => {
                let inferred = infer_csv_schema(path)?;
                let schema = match column_types {
                    None => inferred,
                    Some(types) => Schema::new(
                        inferred
                            .fields()
                            .iter()
                            .map(|f| match types(f.name()) {
                                Some(t) => Field::new(f.name(), t, true),
                                None => f.as_ref().clone().with_nullable(true),
                            })
                            .collect::<Vec<_>>(),
                    ),
                };
                let len = file.metadata().map(|m| m.len()).unwrap_or(0);
                let counted = Counted {
                    inner: file,
                    progress,
                };
                let reader = arrow_csv::ReaderBuilder::new(Arc::new(schema))
                    .with_header(true)
                    .with_batch_size(chunk_rows.max(1))
                    .build(BufReader::new(counted))
                    .map_err(&read_err)?;
                Ok(ChunkReader {
                    total: Total::Bytes(len),
                    format,
                    batches: Box::new(reader.map(move |r| r.map_err(&read_err))),
                })
            }
        }
    }

    /// How much there is to read.
    pub fn total(&self) -> Total {
        self.total
    }

    /// The file's format.
    pub fn format(&self) -> TableFormat {
        self.format
    }
}

impl Iterator for ChunkReader {
    type Item = Result<RecordBatch, TableError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.batches.next()
    }
}

/// Counts bytes read into a progress callback.
struct Counted {
    inner: File,
    progress: Option<Progress>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(p) = self.progress.as_mut() {
            p(n as u64);
        }
        Ok(n)
    }
}

/// A Parquet file (Snappy-compressed) written batch by batch to
/// `PATH.parquet.partial` and renamed to `PATH` by [`ParquetOutput::finish`],
/// so that the file appears only when complete. Dropped unfinished, it
/// removes the partial file.
pub struct ParquetOutput {
    path: PathBuf,
    partial: PathBuf,
    writer: Option<ArrowWriter<File>>,
    rows: u64,
}

impl std::fmt::Debug for ParquetOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetOutput")
            .field("path", &self.path)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl ParquetOutput {
    /// An output to `path`; nothing is created until the first batch.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        ParquetOutput {
            partial: path.with_extension("parquet.partial"),
            path,
            writer: None,
            rows: 0,
        }
    }

    /// Appends a batch; the first one fixes the file's schema.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), TableError> {
        let encode = |source| TableError::Encode {
            path: self.partial.clone(),
            source,
        };
        if self.writer.is_none() {
            let file = File::create(&self.partial).map_err(|source| TableError::Write {
                path: self.partial.clone(),
                source,
            })?;
            let props = parquet::file::properties::WriterProperties::builder()
                .set_compression(parquet::basic::Compression::SNAPPY)
                .build();
            self.writer =
                Some(ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(encode)?);
        }
        let writer = self.writer.as_mut().expect("created above");
        writer.write(batch).map_err(|source| TableError::Encode {
            path: self.partial.clone(),
            source,
        })?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Whether a batch was written (and so the file has a schema).
    pub fn is_started(&self) -> bool {
        self.writer.is_some()
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Closes the file and moves it to its final path; returns the rows
    /// written. With no batch written, writes nothing and returns 0.
    pub fn finish(mut self) -> Result<u64, TableError> {
        let Some(writer) = self.writer.take() else {
            return Ok(0);
        };
        writer.close().map_err(|source| TableError::Encode {
            path: self.partial.clone(),
            source,
        })?;
        std::fs::rename(&self.partial, &self.path).map_err(|source| TableError::Write {
            path: self.path.clone(),
            source,
        })?;
        Ok(self.rows)
    }
}

impl Drop for ParquetOutput {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, Float64Array, Int64Array, StringArray};

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn formats_come_from_extensions() {
        assert_eq!(
            TableFormat::of(Path::new("a.CSV")).unwrap(),
            TableFormat::Csv
        );
        assert_eq!(
            TableFormat::of(Path::new("a.parquet")).unwrap(),
            TableFormat::Parquet
        );
        let e = TableFormat::of(Path::new("a.json")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a.json: give a .csv file (with a header row) or a .parquet file"
        );
    }

    #[test]
    fn csv_fields_may_hold_quoted_commas() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "f.csv",
            "request_id,label,row\n\"a,b\",yes,0\nc,\"no, really\",1\n",
        );
        let t = read_table(&p).unwrap();
        assert_eq!(t.num_rows(), 2);
        assert_eq!(t.num_columns(), 3);
        let ids = t
            .column_by_name("request_id")
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(ids.value(0), "a,b");
        let labels = t
            .column_by_name("label")
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(labels.value(1), "no, really");
        let rows = t.column_by_name("row").unwrap();
        assert!(rows.as_any().downcast_ref::<Int64Array>().is_some());
    }

    #[test]
    fn empty_and_missing_files_are_errors() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "e.csv", "a,b\n");
        assert!(matches!(read_table(&p), Err(TableError::NoRows(_))));
        let missing = d.path().join("missing.csv");
        assert!(matches!(read_table(&missing), Err(TableError::Open { .. })));
    }

    #[test]
    fn chunks_are_bounded_and_types_can_be_overridden() {
        let d = tempfile::tempdir().unwrap();
        let mut text = String::from("x,name\n");
        for i in 0..10 {
            text.push_str(&format!("{i},n{i}\n"));
        }
        let p = write(d.path(), "c.csv", &text);
        let read = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = read.clone();
        let as_float = |name: &str| (name == "x").then_some(DataType::Float64);
        let reader = ChunkReader::open(
            &p,
            ChunkOptions {
                chunk_rows: 4,
                column_types: Some(&as_float),
                progress: Some(Box::new(move |n| {
                    counter.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                })),
            },
        )
        .unwrap();
        assert_eq!(reader.total(), Total::Bytes(text.len() as u64));
        let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
        assert_eq!(
            batches.iter().map(|b| b.num_rows()).collect::<Vec<_>>(),
            [4, 4, 2]
        );
        let x = batches[0].column(0);
        assert!(x.as_any().downcast_ref::<Float64Array>().is_some());
        assert!(batches[0].schema().field(1).is_nullable());
        assert_eq!(
            read.load(std::sync::atomic::Ordering::Relaxed),
            text.len() as u64
        );
    }

    #[test]
    fn parquet_round_trips_through_the_atomic_writer() {
        let d = tempfile::tempdir().unwrap();
        let csv = write(d.path(), "in.csv", "a,b\n1,x\n2,y\n3,z\n");
        let out_path = d.path().join("out.parquet");
        let mut out = ParquetOutput::new(&out_path);
        assert!(!out.is_started());
        for batch in ChunkReader::open(
            &csv,
            ChunkOptions {
                chunk_rows: 2,
                ..ChunkOptions::default()
            },
        )
        .unwrap()
        {
            out.write(&batch.unwrap()).unwrap();
        }
        assert!(!out_path.exists(), "written only when finished");
        assert!(d.path().join("out.parquet.partial").exists());
        assert_eq!(out.finish().unwrap(), 3);
        assert!(!d.path().join("out.parquet.partial").exists());

        let rows = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = rows.clone();
        let reader = ChunkReader::open(
            &out_path,
            ChunkOptions {
                chunk_rows: 2,
                column_types: None,
                progress: Some(Box::new(move |n| {
                    counter.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                })),
            },
        )
        .unwrap();
        assert_eq!(reader.total(), Total::Rows(3));
        assert_eq!(reader.format(), TableFormat::Parquet);
        assert_eq!(reader.count(), 2);
        assert_eq!(rows.load(std::sync::atomic::Ordering::Relaxed), 3);
        let whole = read_table(&out_path).unwrap();
        assert_eq!(whole.num_rows(), 3);
        assert_eq!(whole.column(1).len(), 3);
    }

    #[test]
    fn an_unfinished_output_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let csv = write(d.path(), "in.csv", "a\n1\n");
        let out_path = d.path().join("out.parquet");
        {
            let mut out = ParquetOutput::new(&out_path);
            out.write(&read_table(&csv).unwrap()).unwrap();
        }
        assert!(!out_path.exists());
        assert!(!d.path().join("out.parquet.partial").exists());
    }
}
