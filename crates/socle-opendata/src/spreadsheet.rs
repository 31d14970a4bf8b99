//! XLSX export: one sheet, a header row of field names, then one typed cell per value
//! (numbers, booleans, dates and date-times as Excel values, so a spreadsheet sorts and
//! sums them). Rows go to a temporary file as they come (`constant_memory`), so memory
//! does not grow with the records; the workbook is assembled when saved.

use std::io::Write;

use chrono::{Datelike, Timelike};
use chrono_tz::Tz;
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook, XlsxError};
use serde_json::Value as Json;

use crate::export::{csv_cell, ExportError};
use crate::odsql::Record;
use crate::schema::FieldType;

/// Excel's 1,048,576 rows, the header included.
pub const MAX_ROWS: u32 = 1_048_575;

/// Excel refuses longer text in a cell.
const MAX_CELL_CHARS: usize = 32_767;

pub(crate) struct XlsxWriter {
    workbook: Workbook,
    tz: Tz,
    row: u32,
    pub(crate) max_rows: u32,
    date: Format,
    datetime: Format,
}

fn xlsx(e: XlsxError) -> ExportError {
    ExportError::Xlsx(e.to_string())
}

impl XlsxWriter {
    pub(crate) fn new(columns: &[(String, FieldType)], tz: Tz) -> Result<Self, ExportError> {
        let mut workbook = Workbook::new();
        let sheet = workbook.add_worksheet_with_constant_memory().map_err(xlsx)?;
        let bold = Format::new().set_bold();
        for (i, (name, _)) in columns.iter().enumerate() {
            let col = u16::try_from(i).map_err(|_| ExportError::Xlsx("too many columns".into()))?;
            sheet.write_string_with_format(0, col, name, &bold).map_err(xlsx)?;
        }
        Ok(XlsxWriter {
            workbook,
            tz,
            row: 0,
            max_rows: MAX_ROWS,
            date: Format::new().set_num_format("yyyy-mm-dd"),
            datetime: Format::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
        })
    }

    pub(crate) fn record(&mut self, columns: &[(String, FieldType)], record: &Record) -> Result<(), ExportError> {
        if self.row >= self.max_rows {
            return Err(ExportError::TooManyRows { max: self.max_rows });
        }
        self.row += 1;
        let row = self.row;
        let sheet = self.workbook.worksheet_from_index(0).map_err(xlsx)?;
        for (i, (name, t)) in columns.iter().enumerate() {
            let col = i as u16;
            let value = record.get(name).unwrap_or(&Json::Null);
            match (value, t) {
                (Json::Null, _) => continue,
                (Json::Number(n), _) => {
                    sheet.write_number(row, col, n.as_f64().unwrap_or(0.0)).map_err(xlsx)?;
                }
                (Json::Bool(b), _) => {
                    sheet.write_boolean(row, col, *b).map_err(xlsx)?;
                }
                (Json::String(s), FieldType::Date) => match excel_date(s) {
                    Some(d) => {
                        sheet.write_datetime_with_format(row, col, d, &self.date).map_err(xlsx)?;
                    }
                    None => {
                        sheet.write_string(row, col, cell_text(s)).map_err(xlsx)?;
                    }
                },
                (Json::String(s), FieldType::DateTime) => match excel_datetime(s, self.tz) {
                    Some(d) => {
                        sheet.write_datetime_with_format(row, col, d, &self.datetime).map_err(xlsx)?;
                    }
                    None => {
                        sheet.write_string(row, col, cell_text(s)).map_err(xlsx)?;
                    }
                },
                (Json::String(s), _) => {
                    sheet.write_string(row, col, cell_text(s)).map_err(xlsx)?;
                }
                (other, t) => {
                    sheet.write_string(row, col, cell_text(&csv_cell(other, *t))).map_err(xlsx)?;
                }
            }
        }
        Ok(())
    }

    pub(crate) fn save(mut self, out: &mut (dyn Write + Send)) -> Result<(), ExportError> {
        self.workbook.save_to_writer(out).map_err(xlsx)
    }
}

/// Text as a cell takes it: Excel holds at most 32,767 characters in a cell, so a
/// longer value (a large shape) is cut there; the other formats carry it whole.
fn cell_text(s: &str) -> &str {
    match s.char_indices().nth(MAX_CELL_CHARS) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

fn excel_date(s: &str) -> Option<ExcelDateTime> {
    let d = chrono::NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok()?;
    ExcelDateTime::from_ymd(u16::try_from(d.year()).ok()?, d.month() as u8, d.day() as u8).ok()
}

/// Excel has no time zones: the instant is written as the wall-clock time of `tz`.
fn excel_datetime(s: &str, tz: Tz) -> Option<ExcelDateTime> {
    let t = chrono::DateTime::parse_from_rfc3339(s).ok()?.with_timezone(&tz);
    let seconds = f64::from(t.second()) + f64::from(t.nanosecond() / 1_000_000) / 1000.0;
    ExcelDateTime::from_ymd(u16::try_from(t.year()).ok()?, t.month() as u8, t.day() as u8)
        .ok()?
        .and_hms(t.hour() as u16, t.minute() as u8, seconds)
        .ok()
}
