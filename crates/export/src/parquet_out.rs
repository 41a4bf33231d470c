//! The Parquet writer, through the Apache `parquet` crate's low-level writer
//! (`SerializedFileWriter`, one column writer per column; no arrow): rows are gathered column
//! by column and written as a row group every [`ROW_GROUP_ROWS_MAX`] rows (or sooner, once
//! their text passes [`ROW_GROUP_TEXT_BYTES_MAX`]), so memory holds one row group at most.
//!
//! Types ([`Kind`]): an amount is DECIMAL(18,2) on INT64 (the fen: pandas and pyarrow read
//! `decimal128(18, 2)`, DuckDB `DECIMAL(18,2)`); a day DATE (INT32 days since 1970-01-01); an
//! instant TIMESTAMP(MICROS, adjusted to UTC) on INT64; a whole number INT64; text a UTF8
//! (STRING) byte array. A nullable column is OPTIONAL (its empty cells are nulls), every other
//! REQUIRED. Pages are Snappy-compressed; the file's key-value metadata names the export.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::basic::{Compression, LogicalType, Repetition, TimeUnit, Type as Physical};
use parquet::data_type::{ByteArray, ByteArrayType, Int32Type, Int64Type};
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::{SerializedColumnWriter, SerializedFileWriter};
use parquet::schema::types::Type;

use crate::columns::{days_since_unix_epoch, Cell, Column, Kind};
use crate::{ExportError, Sink};

/// The most rows in one row group.
pub const ROW_GROUP_ROWS_MAX: usize = 65_536;

/// The most text (bytes) gathered before a row group is written, whatever its rows: an event's
/// JSON can be long (a policy version's is kilobytes).
pub const ROW_GROUP_TEXT_BYTES_MAX: usize = 64 << 20;

/// The precision and scale of an amount: 18 digits hold every total the ledger allows
/// (`TOTAL_FEN_MAX`, 10^18 fen, less one), 2 of them after the point (fen).
const DECIMAL_PRECISION: i32 = 18;
const DECIMAL_SCALE: i32 = 2;

/// A Parquet file being written.
pub struct ParquetSink {
    writer: SerializedFileWriter<BufWriter<File>>,
    path: PathBuf,
    columns: &'static [Column],
    gathered: Vec<Gathered>,
    rows: usize,
    text_bytes: usize,
}

/// One column's values of the row group being gathered.
enum Values {
    Int64(Vec<i64>),
    Int32(Vec<i32>),
    Text(Vec<ByteArray>),
}

/// A column's values and, for a nullable column, each row's definition level (1 present,
/// 0 null; the values hold only the present ones).
struct Gathered {
    values: Values,
    levels: Option<Vec<i16>>,
}

impl ParquetSink {
    /// Starts the file with the schema of `columns`; `table` is named in its metadata.
    pub fn new(
        file: File,
        path: &Path,
        columns: &'static [Column],
        table: &str,
    ) -> Result<ParquetSink, ExportError> {
        let failed = |e: ParquetError| ExportError::write(path, e);
        let schema = Arc::new(schema(columns).map_err(failed)?);
        let metadata = vec![KeyValue::new("gongji.export".into(), table.to_string())];
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by(format!("gongji {}", env!("CARGO_PKG_VERSION")))
            .set_key_value_metadata(Some(metadata))
            .build();
        let out = BufWriter::with_capacity(1 << 16, file);
        let writer =
            SerializedFileWriter::new(out, schema, Arc::new(properties)).map_err(failed)?;
        Ok(ParquetSink {
            writer,
            path: path.to_path_buf(),
            columns,
            gathered: columns.iter().map(Gathered::new).collect(),
            rows: 0,
            text_bytes: 0,
        })
    }

    /// Writes the gathered rows as one row group, and starts gathering anew.
    fn write_row_group(&mut self) -> Result<(), ParquetError> {
        if self.rows == 0 {
            return Ok(());
        }
        let mut group = self.writer.next_row_group()?;
        for gathered in &mut self.gathered {
            let column = group
                .next_column()?
                .ok_or_else(|| ParquetError::General("fewer columns than the schema's".into()))?;
            gathered.write(column)?;
        }
        group.close()?;
        self.rows = 0;
        self.text_bytes = 0;
        Ok(())
    }
}

impl Sink for ParquetSink {
    fn row(&mut self, cells: &[Cell<'_>]) -> Result<(), ExportError> {
        debug_assert_eq!(cells.len(), self.columns.len());
        for ((column, gathered), cell) in self.columns.iter().zip(&mut self.gathered).zip(cells) {
            self.text_bytes += gathered.push(column, cell);
        }
        self.rows += 1;
        if self.rows >= ROW_GROUP_ROWS_MAX || self.text_bytes >= ROW_GROUP_TEXT_BYTES_MAX {
            self.write_row_group()
                .map_err(|e| ExportError::write(&self.path, e))?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<File, ExportError> {
        let path = self.path.clone();
        let failed = |e: ParquetError| ExportError::write(&path, e);
        self.write_row_group().map_err(failed)?;
        let out = self.writer.into_inner().map_err(failed)?;
        out.into_inner()
            .map_err(|e| ExportError::write(&path, e.into_error()))
    }
}

impl Gathered {
    fn new(column: &Column) -> Gathered {
        let values = match column.kind {
            Kind::Int | Kind::Money | Kind::Timestamp => Values::Int64(Vec::new()),
            Kind::Date => Values::Int32(Vec::new()),
            Kind::Text => Values::Text(Vec::new()),
        };
        Gathered {
            values,
            levels: column.nullable.then(Vec::new),
        }
    }

    /// Adds `cell` to the column; returns the bytes of text it added. A cell of another kind
    /// than its column's is a bug in the table (its tests check every row fits).
    fn push(&mut self, column: &Column, cell: &Cell<'_>) -> usize {
        if let Some(levels) = &mut self.levels {
            levels.push(if cell.is_null() { 0 } else { 1 });
        }
        match (&mut self.values, cell) {
            (Values::Int64(values), Cell::Int(n)) => values.push(*n),
            (Values::Int64(values), Cell::Money(amount)) => {
                values.extend(amount.map(|a| a.fen()));
            }
            (Values::Int64(values), Cell::Timestamp(micros)) => values.push(*micros),
            (Values::Int32(values), Cell::Date(day)) => {
                values.extend(day.map(days_since_unix_epoch));
            }
            (Values::Text(values), Cell::Text(text)) => {
                let text = text.as_deref().unwrap_or_default();
                if !cell.is_null() {
                    values.push(ByteArray::from(text));
                }
                return text.len();
            }
            _ => panic!(
                "column {} is {:?}, not {:?}: the table's row does not fit its columns",
                column.name,
                column.kind,
                cell.kind()
            ),
        }
        0
    }

    /// Writes the gathered values as the row group's chunk of this column, and empties them.
    fn write(&mut self, mut column: SerializedColumnWriter<'_>) -> Result<(), ParquetError> {
        let levels = self.levels.as_deref();
        match &mut self.values {
            Values::Int64(values) => {
                column
                    .typed::<Int64Type>()
                    .write_batch(values, levels, None)?;
                values.clear();
            }
            Values::Int32(values) => {
                column
                    .typed::<Int32Type>()
                    .write_batch(values, levels, None)?;
                values.clear();
            }
            Values::Text(values) => {
                column
                    .typed::<ByteArrayType>()
                    .write_batch(values, levels, None)?;
                values.clear();
            }
        }
        if let Some(levels) = &mut self.levels {
            levels.clear();
        }
        column.close()
    }
}

/// The file's schema: one primitive field per column, typed as the module says.
pub fn schema(columns: &[Column]) -> Result<Type, ParquetError> {
    let fields = columns
        .iter()
        .map(|column| field(column).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    Type::group_type_builder("gongji_export")
        .with_fields(fields)
        .build()
}

fn field(column: &Column) -> Result<Type, ParquetError> {
    let repetition = if column.nullable {
        Repetition::OPTIONAL
    } else {
        Repetition::REQUIRED
    };
    let (physical, logical) = match column.kind {
        Kind::Int => (Physical::INT64, None),
        Kind::Text => (Physical::BYTE_ARRAY, Some(LogicalType::String)),
        Kind::Money => (
            Physical::INT64,
            Some(LogicalType::decimal(DECIMAL_SCALE, DECIMAL_PRECISION)),
        ),
        Kind::Date => (Physical::INT32, Some(LogicalType::Date)),
        Kind::Timestamp => (
            Physical::INT64,
            Some(LogicalType::timestamp(true, TimeUnit::MICROS)),
        ),
    };
    let mut builder = Type::primitive_type_builder(column.name, physical)
        .with_repetition(repetition)
        .with_logical_type(logical);
    if column.kind == Kind::Money {
        builder = builder
            .with_precision(DECIMAL_PRECISION)
            .with_scale(DECIMAL_SCALE);
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    const COLUMNS: [Column; 3] = [
        Column::new("n", Kind::Int),
        Column::nullable("amount", Kind::Money),
        Column::nullable("note", Kind::Text),
    ];

    #[test]
    fn rows_go_out_in_row_groups_of_at_most_65536() {
        let dir = tempfile::tempdir().expect("a directory");
        let path = dir.path().join("x.parquet");
        let file = File::create(&path).expect("a file");
        let mut sink = Box::new(ParquetSink::new(file, &path, &COLUMNS, "test").expect("a sink"));
        let rows = ROW_GROUP_ROWS_MAX + 10;
        for n in 0..rows {
            let amount = (n % 2 == 0).then(|| gongji_domain::Money::from_fen(n as i64));
            let note = (n % 3 == 0).then_some("x");
            let cells = [
                Cell::Int(n as i64),
                Cell::Money(amount),
                Cell::text_or_null(note),
            ];
            sink.row(&cells).expect("a row");
            assert!(
                sink.rows <= ROW_GROUP_ROWS_MAX,
                "never more gathered than a row group"
            );
        }
        sink.finish().expect("finished").sync_all().expect("synced");
        let reader = SerializedFileReader::new(File::open(&path).expect("the file")).expect("read");
        let groups: Vec<i64> = reader
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows())
            .collect();
        assert_eq!(groups, [ROW_GROUP_ROWS_MAX as i64, 10]);
    }

    #[test]
    fn every_tables_schema_builds() {
        for table in [
            crate::Table::Settlements,
            crate::Table::Events,
            crate::Table::Funds,
        ] {
            let schema = schema(table.columns()).expect("a valid schema");
            assert_eq!(schema.get_fields().len(), table.columns().len());
        }
    }
}
