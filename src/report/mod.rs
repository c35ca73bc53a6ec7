//! Run reports as files an admin downloads (R19).

mod xlsx;

pub use xlsx::{MAX_ROWS, filename, workbook, write_report};

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
    #[error("the report's lines could not be read: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("the report workbook could not be written: {0}")]
    Io(#[from] std::io::Error),
}
