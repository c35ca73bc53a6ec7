//! Run reports as files an admin downloads (R19).

mod xlsx;

pub use xlsx::{filename, workbook};

/// Why a report file could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("the {sheet} sheet would need {rows} rows, more than Excel's {max}")]
    TooManyRows {
        sheet: &'static str,
        rows: usize,
        max: usize,
    },
    #[error("the report workbook could not be written: {0}")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
}
