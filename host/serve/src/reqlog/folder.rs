//! The edge runtime's sink: each chunk a Parquet file in a folder whose
//! total size is bounded (the oldest files go first), written so that a
//! crash never leaves half a file under a final name; and the reading side,
//! with which `sluice monitor --ingest` takes a device's files into a store.
//!
//! A file says whose rows it holds in its schema's metadata (`sluice.model`,
//! `sluice.version`, `sluice.graph`, …): a file copied off a device carries
//! everything needed to credit it to the right model version, and the
//! graph's digest keeps it from being credited to another store's version
//! that only shares the name and number.

use super::{LogChunk, LogSink};
use arrow_array::RecordBatch;
use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// The format a log file declares under [`KEY_FORMAT`].
pub const FORMAT: &str = "sluice-request-log/1";
/// Schema metadata keys of a log file.
pub const KEY_FORMAT: &str = "sluice.log.format";
const KEY_MODEL: &str = "sluice.model";
const KEY_VERSION: &str = "sluice.version";
const KEY_GRAPH: &str = "sluice.graph";
const KEY_ROWS: &str = "sluice.rows";
const KEY_FIRST: &str = "sluice.first_at";
const KEY_LAST: &str = "sluice.last_at";
const KEY_SERVER: &str = "sluice.server";
/// Optional: files written before it was recorded have no route.
const KEY_ROUTE: &str = "sluice.route";

/// Log files are `requests-TIME-SEQ.parquet`, which sort oldest first.
const PREFIX: &str = "requests-";
const SUFFIX: &str = ".parquet";

/// Writes chunks as files in a folder of bounded size.
pub struct FolderSink {
    dir: PathBuf,
    max_bytes: u64,
    server: String,
    seq: u64,
}

impl FolderSink {
    /// A sink into `dir` (created if missing) that keeps its log files
    /// under `max_bytes` in all; `server` names the writer in each file.
    /// Checks the folder can be written now rather than at the first flush,
    /// and removes files a crash left half-written.
    pub fn open(dir: &Path, max_bytes: u64, server: String) -> Result<Self, String> {
        let io = |e: std::io::Error| format!("the request-log folder {}: {e}", dir.display());
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut seq = 0;
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let name = entry.map_err(io)?.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.ends_with(".partial") {
                let _ = std::fs::remove_file(dir.join(&*name));
            } else if let Some(s) = sequence(&name) {
                seq = seq.max(s);
            }
        }
        let probe = dir.join(".sluice-write-probe.partial");
        std::fs::write(&probe, b"").map_err(io)?;
        let _ = std::fs::remove_file(&probe);
        Ok(FolderSink {
            dir: dir.to_path_buf(),
            max_bytes,
            server,
            seq,
        })
    }

    /// Removes the oldest log files until the folder's are under the
    /// bound, never the one just written.
    fn rotate(&self, newest: &str) {
        let Ok(files) = log_files(&self.dir) else {
            return;
        };
        let sizes: Vec<(PathBuf, u64)> = files
            .into_iter()
            .filter_map(|p| Some((p.clone(), std::fs::metadata(&p).ok()?.len())))
            .collect();
        let mut total: u64 = sizes.iter().map(|(_, n)| n).sum();
        for (path, size) in sizes {
            if total <= self.max_bytes || path.file_name().is_some_and(|n| n == newest) {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total -= size;
                eprintln!(
                    "request log: removed the oldest file {} ({size} bytes) to stay under {} bytes",
                    path.display(),
                    self.max_bytes
                );
            }
        }
    }
}

impl LogSink for FolderSink {
    fn write(&mut self, chunk: &LogChunk, rows: &RecordBatch) -> Result<(), String> {
        let labels: HashMap<String, String> = [
            (KEY_FORMAT, FORMAT.to_string()),
            (KEY_MODEL, chunk.name.clone()),
            (KEY_VERSION, chunk.version.to_string()),
            (KEY_GRAPH, chunk.graph.to_string()),
            (KEY_ROWS, chunk.rows.to_string()),
            (KEY_FIRST, chunk.first_at.clone()),
            (KEY_LAST, chunk.last_at.clone()),
            (KEY_SERVER, self.server.clone()),
            (KEY_ROUTE, chunk.route.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let schema = rows.schema().as_ref().clone().with_metadata(labels);
        let labelled = rows
            .clone()
            .with_schema(Arc::new(schema))
            .map_err(|e| e.to_string())?;
        let bytes =
            sluice_runtime::table::batch_to_parquet(&labelled).map_err(|e| e.to_string())?;
        self.seq += 1;
        let name = format!(
            "{PREFIX}{}-{:06}{SUFFIX}",
            sluice_time::compact(SystemTime::now()),
            self.seq
        );
        let tmp = self.dir.join(format!(".{name}.partial"));
        let io = |e: std::io::Error| format!("{}: {e}", tmp.display());
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(&bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, self.dir.join(&name)).map_err(io)?;
        self.rotate(&name);
        Ok(())
    }
}

/// The sequence number of a log file's name, `None` for other files.
fn sequence(name: &str) -> Option<u64> {
    let stem = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    stem.rsplit('-').next()?.parse().ok()
}

/// The log files of `dir`, oldest first.
pub fn log_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| sequence(&e.file_name().to_string_lossy()).is_some())
        .map(|e| e.path())
        .collect();
    files.sort();
    Ok(files)
}

/// A log file read back: whose rows it holds and the rows.
#[derive(Debug)]
pub struct LoggedChunk {
    /// The chunk's labels.
    pub chunk: LogChunk,
    /// Which runtime wrote it.
    pub server: String,
    /// The rows, as the server's log holds them (without the labels).
    pub rows: RecordBatch,
}

/// Reads a log file's bytes; an error says what is wrong with it.
pub fn read_file(bytes: bytes::Bytes) -> Result<LoggedChunk, String> {
    let unreadable = |e: &dyn std::fmt::Display| format!("not a Parquet file sluice can read: {e}");
    // The file's schema carries the labels (its batches' may not).
    let table = sluice_runtime::table::from_parquet(bytes).map_err(|e| unreadable(&e))?;
    let labels = table.schema().metadata().clone();
    let rows = table.to_batch().map_err(|e| unreadable(&e))?;
    let get = |key: &str| {
        labels
            .get(key)
            .cloned()
            .ok_or_else(|| format!("its metadata lacks `{key}`"))
    };
    match labels.get(KEY_FORMAT) {
        Some(f) if f == FORMAT => {}
        Some(f) => {
            return Err(format!(
                "it is a request log of format {f}; this sluice reads {FORMAT}"
            ));
        }
        None => {
            return Err(
                "it is not a request log of sluice-edge (its metadata has no `sluice.log.format`)"
                    .into(),
            );
        }
    }
    let number = |key: &str| {
        get(key)?
            .parse::<i64>()
            .map_err(|_| format!("its `{key}` is not a whole number"))
    };
    let graph = get(KEY_GRAPH)?;
    let chunk = LogChunk {
        name: get(KEY_MODEL)?,
        version: number(KEY_VERSION)?,
        graph: graph
            .parse()
            .map_err(|_| format!("its `{KEY_GRAPH}` ({graph}) is not a digest"))?,
        rows: number(KEY_ROWS)? as u64,
        route: labels.get(KEY_ROUTE).cloned().unwrap_or_default(),
        first_at: get(KEY_FIRST)?,
        last_at: get(KEY_LAST)?,
    };
    if chunk.rows != rows.num_rows() as u64 {
        return Err(format!(
            "it says it holds {} rows and holds {}",
            chunk.rows,
            rows.num_rows()
        ));
    }
    let server = get(KEY_SERVER)?;
    let plain = rows.schema().as_ref().clone().with_metadata(HashMap::new());
    let rows = rows
        .with_schema(Arc::new(plain))
        .map_err(|e| e.to_string())?;
    Ok(LoggedChunk {
        chunk,
        server,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use sluice_runtime::Digest;

    fn rows(n: usize) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("request_id", DataType::Utf8, false),
            Field::new("x", DataType::Float64, false),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from(vec!["r"; n])),
                Arc::new(Float64Array::from(
                    (0..n).map(|i| i as f64).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap()
    }

    fn chunk(rows: u64) -> LogChunk {
        LogChunk {
            name: "m".into(),
            version: 3,
            graph: Digest::of(b"graph"),
            route: "m@production".into(),
            rows,
            first_at: "2026-12-02T00:00:00.000Z".into(),
            last_at: "2026-12-02T00:00:01.000Z".into(),
        }
    }

    #[test]
    fn a_written_file_reads_back_with_its_labels_and_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = FolderSink::open(dir.path(), 1 << 30, "edge@test".into()).unwrap();
        sink.write(&chunk(5), &rows(5)).unwrap();
        let files = log_files(dir.path()).unwrap();
        assert_eq!(files.len(), 1);
        let back = read_file(std::fs::read(&files[0]).unwrap().into()).unwrap();
        assert_eq!(back.chunk, chunk(5));
        assert_eq!(back.server, "edge@test");
        assert_eq!(back.rows, rows(5), "same rows, labels removed");
    }

    #[test]
    fn the_folder_keeps_under_its_bound_by_dropping_the_oldest_files() {
        let dir = tempfile::tempdir().unwrap();
        let one = {
            let d = tempfile::tempdir().unwrap();
            let mut s = FolderSink::open(d.path(), u64::MAX, "e".into()).unwrap();
            s.write(&chunk(100), &rows(100)).unwrap();
            std::fs::metadata(&log_files(d.path()).unwrap()[0])
                .unwrap()
                .len()
        };
        let mut sink = FolderSink::open(dir.path(), 3 * one, "e".into()).unwrap();
        for _ in 0..7 {
            sink.write(&chunk(100), &rows(100)).unwrap();
        }
        let files = log_files(dir.path()).unwrap();
        let names: Vec<u64> = files
            .iter()
            .map(|p| sequence(&p.file_name().unwrap().to_string_lossy()).unwrap())
            .collect();
        assert_eq!(names, vec![5, 6, 7], "the three newest stay");
        // A sink opened again carries on the numbering and removes a
        // half-written file.
        std::fs::write(dir.path().join(".requests-x.parquet.partial"), b"half").unwrap();
        let mut again = FolderSink::open(dir.path(), u64::MAX, "e".into()).unwrap();
        again.write(&chunk(1), &rows(1)).unwrap();
        let last = log_files(dir.path()).unwrap().pop().unwrap();
        assert_eq!(
            sequence(&last.file_name().unwrap().to_string_lossy()),
            Some(8)
        );
        assert!(!dir.path().join(".requests-x.parquet.partial").exists());
    }

    #[test]
    fn files_that_are_not_logs_or_lie_about_their_rows_are_refused() {
        let plain = sluice_runtime::table::batch_to_parquet(&rows(2)).unwrap();
        let e = read_file(plain.into()).unwrap_err();
        assert!(e.contains("not a request log of sluice-edge"), "{e}");
        let e = read_file(bytes::Bytes::from_static(b"PAR1 nonsense")).unwrap_err();
        assert!(e.contains("not a Parquet file"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let mut sink = FolderSink::open(dir.path(), u64::MAX, "e".into()).unwrap();
        sink.write(&chunk(9), &rows(2)).unwrap();
        let file = &log_files(dir.path()).unwrap()[0];
        let e = read_file(std::fs::read(file).unwrap().into()).unwrap_err();
        assert!(e.contains("says it holds 9 rows and holds 2"), "{e}");
    }
}
