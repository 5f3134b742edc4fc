//! A data file as `std:ingest-csv` and `read-file` read it: sniffed, then
//! read as CSV (with and without a header, in small batches, so that chunk
//! boundaries fall everywhere) and as JSON lines.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_tables::read::{Format, ReadOptions, read};

fuzz_target!(|data: &[u8]| {
    let bytes = bytes::Bytes::copy_from_slice(data);
    let _ = read("fuzz.data", bytes.clone(), &ReadOptions::default());
    for format in [Format::Csv, Format::JsonLines] {
        let options = ReadOptions {
            format: Some(format),
            batch_rows: Some(3),
            ..ReadOptions::default()
        };
        if let Ok((table, report)) = read("fuzz.data", bytes.clone(), &options) {
            assert_eq!(table.num_rows() as u64, report.rows);
        }
    }
});
