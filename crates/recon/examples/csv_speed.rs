//! Measures, in one process, the hand-written CSV splitter and writer of `gongji-recon`
//! against the `csv` crate: lines split per second (old, new, ratio) over a generated 3202 file
//! of about a million lines, and difference rows written per second, the paths alternated.
//!
//! `CARGO_TARGET_DIR=... cargo run --release -p gongji-recon --example csv_speed [LINES [ROUNDS]]`
//!
//! One JSON figure per line on standard output (as `gongji-bench` prints them), notes on
//! standard error.
//!
//! The crate's reading here is a lower bound: it enforces none of the splitter's quote rules (no
//! text after a closing quote, no quote in an unquoted value, no quote left open, spaces before
//! an opening quote skipped), which the crate accepts or reads otherwise and which would need a
//! check of about the splitter's size around it, with its own messages. Measured (release, two
//! cores shared with a CI run; 1,000,000 lines and 5 and 7 rounds in one sitting, 300,000 lines
//! and 3 rounds in another): splitting lines in memory, the crate 0.55-0.98 of the hand-written
//! rate; reading and splitting the file as the reconciliation does, 0.77-1.14 (noise larger
//! than the difference); a reader built per line, 0.006-0.01; writing, 0.79-0.81, the same bytes.
//! So the reading stays hand-written, for its rules rather than its speed, and the differences
//! CSV is written by the crate: its fifth slower matters nothing beside reading the file.

use std::io::{self, Cursor, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use gongji_recon::input::{self, RowFault, COLUMNS_MAX};
use gongji_recon::render::spreadsheet_safe;

fn emit(name: &str, value: f64, unit: &str) {
    println!("{{\"name\":\"{name}\",\"value\":{value:.4},\"unit\":\"{unit}\"}}");
}

fn note(message: &str) {
    eprintln!("csv_speed: {message}");
}

fn rate(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The csv crate with a reader built for each line, as its documentation reads a file.
fn crate_split_per_line(line: &str, record: &mut csv::StringRecord) -> Result<usize, RowFault> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_reader(line.as_bytes());
    if !reader
        .read_record(record)
        .map_err(|e| RowFault(e.to_string()))?
    {
        return Ok(1);
    }
    Ok(record.iter().map(|f| f.trim_matches(' ').len()).sum())
}

/// The csv crate's reader, made once and pointed at each line in turn: a lower bound of its
/// cost, as it checks none of the splitter's quote rules.
struct CrateSplitter {
    reader: csv::Reader<Cursor<Vec<u8>>>,
    record: csv::StringRecord,
}

impl CrateSplitter {
    fn new() -> CrateSplitter {
        CrateSplitter {
            reader: csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .terminator(csv::Terminator::Any(b'\n'))
                .from_reader(Cursor::new(Vec::new())),
            record: csv::StringRecord::new(),
        }
    }

    /// Reads `line` as one record (a line ends it, so the reader never reaches its input's end).
    fn split(&mut self, line: &str) -> Result<(), RowFault> {
        let cursor = self.reader.get_mut();
        let buffer = cursor.get_mut();
        buffer.clear();
        buffer.extend_from_slice(line.as_bytes());
        buffer.push(b'\n');
        cursor.set_position(0);
        self.reader
            .read_record(&mut self.record)
            .map_err(|e| RowFault(e.to_string()))?;
        if self.record.len() > COLUMNS_MAX {
            return Err(RowFault(format!("line has more than {COLUMNS_MAX} fields")));
        }
        Ok(())
    }

    /// The fields of the line last read, trimmed of surrounding spaces as the splitter trims.
    fn fields(&self) -> impl Iterator<Item = Result<&str, RowFault>> + '_ {
        self.record.iter().map(|field| Ok(field.trim_matches(' ')))
    }
}

/// Builds a 3202 file: a real generated hospital month (`synthetic`), its data rows repeated
/// until the file has `lines` lines; `quoted` quotes every row's `mdtrt_id`.
fn build_file(
    dir: &Path,
    lines: u64,
    quoted: bool,
    seed_rows: &[String],
    header: &str,
) -> std::path::PathBuf {
    let path = dir.join(if quoted { "quoted.csv" } else { "plain.csv" });
    let mut out = io::BufWriter::new(std::fs::File::create(&path).unwrap());
    writeln!(out, "{header}").unwrap();
    for i in 0..lines - 1 {
        let row = &seed_rows[(i as usize) % seed_rows.len()];
        if quoted {
            let mut parts: Vec<&str> = row.split(',').collect();
            let visit = format!("\"{}\"", parts[1]);
            parts[1] = &visit;
            writeln!(out, "{}", parts.join(",")).unwrap();
        } else {
            writeln!(out, "{row}").unwrap();
        }
    }
    out.flush().unwrap();
    path
}

fn read_all_lines(path: &Path) -> Vec<String> {
    let encoding = input::detect_encoding(path, &mut |_| {}).unwrap();
    let mut lines = input::LineReader::open(path, encoding).unwrap();
    let mut all = Vec::new();
    while let Some(line) = lines.next_line().unwrap() {
        all.push(line.text.unwrap().to_string());
    }
    all
}

#[derive(Clone, Copy, Debug)]
enum Splitter {
    Old,
    Crate,
    CratePerLine,
}

/// Splits every line of `lines` in memory; returns a checksum.
fn split_memory(which: Splitter, lines: &[String]) -> usize {
    let mut sum = 0usize;
    match which {
        Splitter::Old => {
            for line in lines {
                let mut fields = Vec::with_capacity(9);
                input::split_csv_line(line, &mut fields).unwrap();
                sum += fields.iter().map(|f| f.len()).sum::<usize>();
            }
        }
        Splitter::Crate => {
            let mut splitter = CrateSplitter::new();
            for line in lines {
                splitter.split(line).unwrap();
                sum += splitter.fields().map(|f| f.unwrap().len()).sum::<usize>();
            }
        }
        Splitter::CratePerLine => {
            let mut record = csv::StringRecord::new();
            for line in lines {
                sum += crate_split_per_line(line, &mut record).unwrap();
            }
        }
    }
    sum
}

/// Reads the file as the reconciliation does (encoding, bounded decoded lines) and splits
/// every line; returns lines and a checksum.
fn split_file(which: Splitter, path: &Path) -> (u64, usize) {
    let encoding = input::detect_encoding(path, &mut |_| {}).unwrap();
    let mut reader = input::LineReader::open(path, encoding).unwrap();
    let mut count = 0u64;
    let mut sum = 0usize;
    let mut splitter = CrateSplitter::new();
    let mut record = csv::StringRecord::new();
    while let Some(line) = reader.next_line().unwrap() {
        let text = line.text.unwrap();
        count += 1;
        match which {
            Splitter::Old => {
                // A vector per line, as the reconciliation's `parse_line` has it.
                let mut fields = Vec::with_capacity(9);
                input::split_csv_line(text, &mut fields).unwrap();
                sum += fields.iter().map(|f| f.len()).sum::<usize>();
            }
            Splitter::Crate => {
                splitter.split(text).unwrap();
                sum += splitter.fields().map(|f| f.unwrap().len()).sum::<usize>();
            }
            Splitter::CratePerLine => sum += crate_split_per_line(text, &mut record).unwrap(),
        }
    }
    (count, sum)
}

/// The row writer `render::DifferenceCsv` had before it moved to the csv crate (the reference
/// the crate's writer was measured against; kept only here).
fn old_write_row(out: &mut impl Write, fields: &[&str]) -> io::Result<()> {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        let field = spreadsheet_safe(field);
        if field.contains([',', '"', '\n', '\r']) {
            out.write_all(b"\"")?;
            out.write_all(field.replace('"', "\"\"").as_bytes())?;
            out.write_all(b"\"")?;
        } else {
            out.write_all(field.as_bytes())?;
        }
    }
    out.write_all(b"\n")
}

/// The rows as the csv crate would write them for `render::DifferenceCsv`: `\n` after each row,
/// quoting where needed (its default style), each cell made `spreadsheet_safe` first.
fn crate_write_rows(out: &mut Vec<u8>, rows: &[[String; 14]]) -> io::Result<()> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(out);
    for row in rows {
        for field in row {
            writer.write_field(spreadsheet_safe(field).as_bytes())?;
        }
        writer.write_record(None::<&[u8]>)?;
    }
    writer.flush()
}

fn old_write_rows(out: &mut Vec<u8>, rows: &[[String; 14]]) -> io::Result<()> {
    let mut out = io::BufWriter::new(out);
    for row in rows {
        let cells: [&str; 14] = std::array::from_fn(|i| row[i].as_str());
        old_write_row(&mut out, &cells)?;
    }
    out.flush()
}

/// Difference rows as the CSV has them: mostly plain, some with cells to quote or defuse.
fn difference_rows(count: usize) -> Vec<[String; 14]> {
    let notes = [
        "",
        "repeats line 2",
        "field 2 opens a quote that the line never closes (fields may not span lines)",
        "refd_setl_flag '2' must be 0 (settlement) or 1 (refund)",
        "ledger date 2024-03-10",
        "say \"hi\", then\r\nleave",
        "=HYPERLINK(\"http://x\",\"y\")",
        "-12.50",
        "@SUM(A1)",
    ];
    (0..count)
        .map(|i| {
            let amount = format!("{}.{:02}", 100 + i % 5000, i % 100);
            [
                ["fields_differ", "in_file_not_in_ledger", "malformed_row"][i % 3].to_string(),
                (i + 2).to_string(),
                format!("S{i:09}"),
                (i % 2).to_string(),
                format!("M{:07}", i % 100_000),
                format!("V{i:09}"),
                if i % 3 == 0 {
                    "medfee_sumamt".into()
                } else {
                    String::new()
                },
                amount.clone(),
                format!("{}.00", i % 700),
                amount.clone(),
                "0.00".into(),
                amount,
                "0.00".into(),
                notes[i % notes.len()].to_string(),
            ]
        })
        .collect()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let lines: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.csv");
    let policy = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../policies/500000-2024-01-01.json"
    ))
    .unwrap();
    let started = Instant::now();
    let generated = gongji_recon::synthetic::build_hospital_month(
        &dir.path().join("ledger"),
        &policy,
        "H1",
        "2024-03".parse().unwrap(),
        20_000,
        &seed,
    )
    .unwrap();
    let seed_text = std::fs::read_to_string(&seed).unwrap();
    let mut seed_lines = seed_text.lines();
    let header = seed_lines.next().unwrap().to_string();
    let seed_rows: Vec<String> = seed_lines.map(str::to_string).collect();
    note(&format!(
        "generated {} rows in {:.1?}; repeating them to {lines} lines",
        generated.file_rows,
        started.elapsed()
    ));
    for quoted in [false, true] {
        let label = if quoted { "quoted" } else { "plain" };
        let path = build_file(dir.path(), lines, quoted, &seed_rows, &header);
        let in_memory = read_all_lines(&path);
        let expected = split_memory(Splitter::Old, &in_memory);
        assert_eq!(
            split_memory(Splitter::Crate, &in_memory),
            expected,
            "the crate splits differently"
        );
        // A reader built per line is far too slow to pass over the whole file each round:
        // measured once, on the first 100,000 lines.
        let sample = &in_memory[..in_memory.len().min(100_000)];
        let start = Instant::now();
        std::hint::black_box(split_memory(Splitter::CratePerLine, sample));
        let per_line = rate(sample.len() as u64, start.elapsed());
        let paths = [Splitter::Old, Splitter::Crate];
        let mut memory_rates = [vec![], vec![]];
        let mut file_rates = [vec![], vec![]];
        for round in 0..rounds {
            for (i, which) in paths.into_iter().enumerate() {
                let start = Instant::now();
                std::hint::black_box(split_memory(which, &in_memory));
                memory_rates[i].push(rate(in_memory.len() as u64, start.elapsed()));
                let start = Instant::now();
                let (count, sum) = split_file(which, &path);
                std::hint::black_box(sum);
                file_rates[i].push(rate(count, start.elapsed()));
            }
            note(&format!(
                "{label} round {}: memory {:?} file {:?}",
                round + 1,
                memory_rates
                    .iter()
                    .map(|r| r[round] as u64)
                    .collect::<Vec<_>>(),
                file_rates
                    .iter()
                    .map(|r| r[round] as u64)
                    .collect::<Vec<_>>()
            ));
        }
        let names = ["old", "crate"];
        let memory: Vec<f64> = memory_rates.iter_mut().map(|r| median(r)).collect();
        let file: Vec<f64> = file_rates.iter_mut().map(|r| median(r)).collect();
        for i in 0..2 {
            emit(
                &format!("split_{label}_memory_{}", names[i]),
                memory[i],
                "lines/s",
            );
            emit(
                &format!("split_{label}_file_{}", names[i]),
                file[i],
                "lines/s",
            );
        }
        emit(
            &format!("split_{label}_memory_crate_per_line"),
            per_line,
            "lines/s",
        );
        emit(
            &format!("split_{label}_memory_crate_per_line_over_old"),
            per_line / memory[0],
            "ratio",
        );
        for i in 1..2 {
            emit(
                &format!("split_{label}_memory_{}_over_old", names[i]),
                memory[i] / memory[0],
                "ratio",
            );
            emit(
                &format!("split_{label}_file_{}_over_old", names[i]),
                file[i] / file[0],
                "ratio",
            );
        }
    }
    let rows = difference_rows(1_000_000);
    let (mut old_bytes, mut new_bytes) = (Vec::new(), Vec::new());
    old_write_rows(&mut old_bytes, &rows).unwrap();
    crate_write_rows(&mut new_bytes, &rows).unwrap();
    assert!(old_bytes == new_bytes, "the csv crate writes other bytes");
    note(&format!(
        "writers agree on {} rows, {} bytes",
        rows.len(),
        old_bytes.len()
    ));
    let (mut old_rates, mut new_rates) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let mut out = Vec::with_capacity(old_bytes.len());
        let start = Instant::now();
        old_write_rows(&mut out, &rows).unwrap();
        old_rates.push(rate(rows.len() as u64, start.elapsed()));
        let mut out = Vec::with_capacity(old_bytes.len());
        let start = Instant::now();
        crate_write_rows(&mut out, &rows).unwrap();
        new_rates.push(rate(rows.len() as u64, start.elapsed()));
    }
    note(&format!(
        "write rounds: old {old_rates:.0?} crate {new_rates:.0?}"
    ));
    let (old, new) = (median(&mut old_rates), median(&mut new_rates));
    emit("write_old", old, "rows/s");
    emit("write_crate", new, "rows/s");
    emit("write_crate_over_old", new / old, "ratio");
}
