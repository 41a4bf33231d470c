//! A table's columns and a row's cells: one description of every column's type, which both
//! writers follow (CSV text and Parquet types), so the two formats of a table never disagree.

use std::borrow::Cow;

use gongji_domain::{Day, Money};

/// How a column is typed, in both formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A whole number (a log position, a year, a level): Parquet INT64; CSV digits.
    Int,
    /// Text: Parquet a UTF8 (STRING) byte array; CSV the text, spreadsheet-safe.
    Text,
    /// An amount in yuan: Parquet DECIMAL(18,2) on INT64 (the fen); CSV `-12.50`.
    Money,
    /// A calendar day: Parquet DATE (INT32 days since 1970-01-01); CSV `YYYY-MM-DD`.
    Date,
    /// An instant: Parquet TIMESTAMP(MICROS, adjusted to UTC) on INT64; CSV RFC 3339 in UTC
    /// with microseconds, `2024-03-02T08:00:00.000001Z`.
    Timestamp,
}

/// One column of a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
    /// Whether a row may leave it empty (Parquet OPTIONAL; CSV an empty cell).
    pub nullable: bool,
}

impl Column {
    pub const fn new(name: &'static str, kind: Kind) -> Column {
        Column {
            name,
            kind,
            nullable: false,
        }
    }

    pub const fn nullable(name: &'static str, kind: Kind) -> Column {
        Column {
            name,
            kind,
            nullable: true,
        }
    }
}

/// One cell of a row; `None` is an empty cell (only in a nullable column).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cell<'a> {
    Int(i64),
    Text(Option<Cow<'a, str>>),
    Money(Option<Money>),
    Date(Option<Day>),
    /// Microseconds since the Unix epoch, UTC.
    Timestamp(i64),
}

impl<'a> Cell<'a> {
    /// Text borrowed from the event.
    pub fn text(text: &'a str) -> Cell<'a> {
        Cell::Text(Some(Cow::Borrowed(text)))
    }

    /// Text that may be absent.
    pub fn text_or_null(text: Option<&'a str>) -> Cell<'a> {
        Cell::Text(text.map(Cow::Borrowed))
    }

    /// Text made for the row.
    pub fn owned(text: String) -> Cell<'a> {
        Cell::Text(Some(Cow::Owned(text)))
    }

    pub fn money(amount: Money) -> Cell<'a> {
        Cell::Money(Some(amount))
    }

    pub fn date(day: Day) -> Cell<'a> {
        Cell::Date(Some(day))
    }

    /// The column kind this cell belongs in.
    pub fn kind(&self) -> Kind {
        match self {
            Cell::Int(_) => Kind::Int,
            Cell::Text(_) => Kind::Text,
            Cell::Money(_) => Kind::Money,
            Cell::Date(_) => Kind::Date,
            Cell::Timestamp(_) => Kind::Timestamp,
        }
    }

    /// Whether the cell is empty.
    pub fn is_null(&self) -> bool {
        matches!(
            self,
            Cell::Text(None) | Cell::Money(None) | Cell::Date(None)
        )
    }
}

/// Whether `cells` fit `columns`: as many, each of its column's kind, empty only where the
/// column is nullable. A row that does not is a bug in its table, never bad input: the tables'
/// tests hold every row they build to it, and the writers assert it.
pub fn fits(columns: &[Column], cells: &[Cell<'_>]) -> bool {
    columns.len() == cells.len()
        && columns.iter().zip(cells).all(|(column, cell)| {
            cell.kind() == column.kind && (column.nullable || !cell.is_null())
        })
}

/// Days from 0001-01-01 (chrono's count from the common era, a `Day`'s) to 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// A day as Parquet's DATE counts it: days since 1970-01-01.
pub fn days_since_unix_epoch(day: Day) -> i32 {
    use chrono::Datelike;
    day.date().num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE
}

/// An instant as the CSV writes it (RFC 3339, UTC, microseconds), or `None` for one a calendar
/// cannot show.
pub fn timestamp_text(micros: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|at| at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_count_from_the_unix_epoch() {
        let day = |text: &str| text.parse::<Day>().expect("a day");
        assert_eq!(days_since_unix_epoch(day("1970-01-01")), 0);
        assert_eq!(days_since_unix_epoch(day("1969-12-31")), -1);
        assert_eq!(days_since_unix_epoch(day("2024-03-02")), 19_784);
    }

    #[test]
    fn timestamps_are_utc_with_microseconds() {
        assert_eq!(
            timestamp_text(1_709_366_400_000_001).as_deref(),
            Some("2024-03-02T08:00:00.000001Z")
        );
    }

    #[test]
    fn a_row_fits_its_columns_only_with_the_right_kinds_and_no_empty_required_cell() {
        let columns = [
            Column::new("a", Kind::Int),
            Column::nullable("b", Kind::Text),
        ];
        assert!(fits(&columns, &[Cell::Int(1), Cell::Text(None)]));
        assert!(!fits(&columns, &[Cell::Int(1)]));
        assert!(!fits(&columns, &[Cell::Text(None), Cell::Text(None)]));
        let required = [Column::new("b", Kind::Text)];
        assert!(!fits(&required, &[Cell::Text(None)]));
    }
}
