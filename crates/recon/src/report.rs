//! Reconciliation jobs with their printed reports: each takes arguments already parsed (the
//! `gongji` binary parses the command line), runs a job and returns the report to print (text,
//! or one JSON object on one line; text in the language asked) with the exit status (0 match, 1
//! differences), or, for unreadable input, the [`ReconError`] to report before exiting with 2.
//! The report is returned rather
//! than printed so that a progress bar can be finished first.

use std::ops::RangeInclusive;
use std::path::Path;

use gongji_domain::{Day, Month};
use gongji_ledger::Ledger;
use serde::Serialize;

use crate::csv_file::CsvFile;
use crate::render::{self, terminal_safe, terminal_safe_json};
use crate::words::Lang;
use crate::{
    reconcile_detail_streaming, reconcile_totals, settlement_statement, DetailOptions, ReconError,
    EXIT_MATCH,
};

/// A report ready to print, and the exit status it calls for. The text is terminal-safe:
/// whatever the file said, no character a terminal would act on is left in it
/// ([`terminal_safe`], [`terminal_safe_json`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Printed {
    /// Ends with a newline.
    pub text: String,
    pub exit_code: u8,
}

/// How a report is printed: one JSON object on one line, or text in a language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    Json,
    Text(Lang),
}

impl Form {
    /// JSON when `json`, else text in `lang`.
    pub fn new(json: bool, lang: Lang) -> Form {
        if json {
            Form::Json
        } else {
            Form::Text(lang)
        }
    }
}

fn printed(
    form: Form,
    value: &impl Serialize,
    text: impl FnOnce(Lang) -> String,
    exit_code: u8,
) -> Result<Printed, ReconError> {
    let text = match form {
        Form::Json => {
            let line = serde_json::to_string(value)
                .map_err(|e| ReconError::Output(format!("cannot print the report: {e}")))?;
            format!(
                "{}
",
                terminal_safe_json(&line)
            )
        }
        Form::Text(lang) => terminal_safe(&text(lang)).into_owned(),
    };
    Ok(Printed { text, exit_code })
}

/// `reconcile detail FILE --institution ID --from DATE --to DATE [--json] [--csv OUT]`: the
/// settlements of `period` (both days included). With `csv`, every difference (not only those
/// the report lists) is written there, through a [`CsvFile`]: the path is refused when it is
/// the input, a symbolic link or not a regular file, and it is replaced only when the job
/// succeeds. Errors quote the file as it is; the caller makes them terminal-safe.
pub fn detail(
    ledger: &Ledger,
    file: &Path,
    institution: &str,
    period: RangeInclusive<Day>,
    form: Form,
    csv: Option<&Path>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Printed, ReconError> {
    // Checked and created only once the input is found; it lands at `csv` only at success.
    let mut csv_file = csv
        .map(|path| CsvFile::create(path, file))
        .transpose()
        .map_err(ReconError::Output)?;
    let report = reconcile_detail_streaming(
        ledger,
        file,
        institution,
        *period.start(),
        *period.end(),
        &DetailOptions::default(),
        progress,
        &mut |difference| match csv_file.as_mut() {
            Some(csv_file) => csv_file.write(difference),
            None => Ok(()),
        },
    )?;
    if let Some(csv_file) = csv_file {
        csv_file.commit().map_err(ReconError::Output)?;
    }
    printed(
        form,
        &report,
        |text_lang| render::detail_text(&report, text_lang),
        report.exit_code(),
    )
}

/// `reconcile totals FILE [--json]`.
pub fn totals(
    ledger: &Ledger,
    file: &Path,
    form: Form,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Printed, ReconError> {
    let report = reconcile_totals(ledger, file, progress)?;
    printed(
        form,
        &report,
        |text_lang| render::totals_text(&report, text_lang),
        report.exit_code(),
    )
}

/// `settlement INSTITUTION MONTH [--json]`. The statement is printed even when the institution
/// settled nothing in the month (all zeros); the status is then 1, as for an unknown member,
/// since that is most often a mistyped institution id, and the text says so under the zeros.
pub fn statement(
    ledger: &Ledger,
    institution: &str,
    month: Month,
    form: Form,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Printed, ReconError> {
    let statement = settlement_statement(ledger, institution, month, progress)?;
    let exit_code = if statement.is_empty() { 1 } else { EXIT_MATCH };
    printed(
        form,
        &statement,
        |text_lang| render::statement_text(&statement, text_lang),
        exit_code,
    )
}
