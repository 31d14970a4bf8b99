//! Parquet export with the crate's low-level column writer (no Arrow): one optional
//! column per field, typed from the schema (int → INT64, double → DOUBLE, boolean,
//! date → DATE, datetime → TIMESTAMP(MILLIS, UTC), the rest UTF-8 text as in CSV),
//! Snappy-compressed, in row groups of [`ROW_GROUP`] records: memory holds one row
//! group, and each finished group's bytes are handed out at once.

use std::sync::Arc;

use parquet::basic::{Compression, LogicalType, Repetition, TimeUnit, Type as Physical};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int32Type, Int64Type};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;
use serde_json::Value as Json;

use crate::export::{csv_cell, ExportError};
use crate::odsql::Record;
use crate::schema::FieldType;

/// Records per row group.
pub const ROW_GROUP: usize = 65_536;

fn parquet(e: ParquetError) -> ExportError {
    ExportError::Parquet(e.to_string())
}

enum Values {
    Int64(Vec<i64>),
    Double(Vec<f64>),
    Bool(Vec<bool>),
    Date(Vec<i32>),
    Timestamp(Vec<i64>),
    Text(Vec<ByteArray>),
}

struct Column {
    field_type: FieldType,
    values: Values,
    /// 1 where the row has a value, 0 where it is null.
    defined: Vec<i16>,
}

impl Column {
    fn new(field_type: FieldType) -> Self {
        let values = match field_type {
            FieldType::Int => Values::Int64(Vec::new()),
            FieldType::Double => Values::Double(Vec::new()),
            FieldType::Boolean => Values::Bool(Vec::new()),
            FieldType::Date => Values::Date(Vec::new()),
            FieldType::DateTime => Values::Timestamp(Vec::new()),
            _ => Values::Text(Vec::new()),
        };
        Column { field_type, values, defined: Vec::new() }
    }

    fn push(&mut self, value: &Json) {
        let pushed = match (&mut self.values, value) {
            (_, Json::Null) => false,
            (Values::Int64(v), Json::Number(n)) => {
                let n = n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64));
                n.map(|n| v.push(n)).is_some()
            }
            (Values::Double(v), Json::Number(n)) => n.as_f64().map(|n| v.push(n)).is_some(),
            (Values::Bool(v), Json::Bool(b)) => {
                v.push(*b);
                true
            }
            (Values::Date(v), Json::String(s)) => s
                .get(..10)
                .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                // Days since 1970-01-01 (day 719,163 of the common era).
                .map(|d| v.push(chrono::Datelike::num_days_from_ce(&d) - 719_163))
                .is_some(),
            (Values::Timestamp(v), Json::String(s)) => {
                chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| v.push(t.timestamp_millis())).is_some()
            }
            (Values::Text(v), Json::String(s)) => {
                v.push(ByteArray::from(s.as_str()));
                true
            }
            (Values::Text(v), other) => {
                v.push(ByteArray::from(csv_cell(other, self.field_type).as_str()));
                true
            }
            // A value of another type than the column's is written as null.
            _ => false,
        };
        self.defined.push(i16::from(pushed));
    }

    fn schema(&self, name: &str) -> Result<Arc<Type>, ExportError> {
        let (physical, logical) = match self.values {
            Values::Int64(_) => (Physical::INT64, None),
            Values::Double(_) => (Physical::DOUBLE, None),
            Values::Bool(_) => (Physical::BOOLEAN, None),
            Values::Date(_) => (Physical::INT32, Some(LogicalType::Date)),
            Values::Timestamp(_) => (Physical::INT64, Some(LogicalType::timestamp(true, TimeUnit::MILLIS))),
            Values::Text(_) => (Physical::BYTE_ARRAY, Some(LogicalType::String)),
        };
        Ok(Arc::new(
            Type::primitive_type_builder(name, physical)
                .with_repetition(Repetition::OPTIONAL)
                .with_logical_type(logical)
                .build()
                .map_err(parquet)?,
        ))
    }
}

pub(crate) struct ParquetWriter {
    writer: SerializedFileWriter<Vec<u8>>,
    columns: Vec<Column>,
    rows: usize,
}

impl ParquetWriter {
    pub(crate) fn new(columns: &[(String, FieldType)]) -> Result<Self, ExportError> {
        let buffers: Vec<Column> = columns.iter().map(|(_, t)| Column::new(*t)).collect();
        let fields =
            columns.iter().zip(&buffers).map(|((name, _), c)| c.schema(name)).collect::<Result<Vec<_>, _>>()?;
        let schema = Type::group_type_builder("record").with_fields(fields).build().map_err(parquet)?;
        let properties =
            WriterProperties::builder().set_compression(Compression::SNAPPY).set_created_by("Socle".into()).build();
        let writer = SerializedFileWriter::new(Vec::new(), Arc::new(schema), Arc::new(properties)).map_err(parquet)?;
        Ok(ParquetWriter { writer, columns: buffers, rows: 0 })
    }

    /// Buffers the record; returns the bytes of a row group when one is complete.
    pub(crate) fn record(&mut self, names: &[(String, FieldType)], record: &Record) -> Result<Vec<u8>, ExportError> {
        for ((name, _), column) in names.iter().zip(&mut self.columns) {
            column.push(record.get(name).unwrap_or(&Json::Null));
        }
        self.rows += 1;
        if self.rows < ROW_GROUP {
            return Ok(Vec::new());
        }
        self.flush_group()
    }

    fn flush_group(&mut self) -> Result<Vec<u8>, ExportError> {
        if self.rows == 0 {
            return Ok(Vec::new());
        }
        let mut group = self.writer.next_row_group().map_err(parquet)?;
        for column in &mut self.columns {
            let Some(mut writer) = group.next_column().map_err(parquet)? else {
                return Err(ExportError::Parquet("fewer columns than fields".into()));
            };
            let defined = Some(column.defined.as_slice());
            match &mut column.values {
                Values::Int64(v) | Values::Timestamp(v) => {
                    writer.typed::<Int64Type>().write_batch(v, defined, None).map_err(parquet)?;
                    v.clear();
                }
                Values::Double(v) => {
                    writer.typed::<DoubleType>().write_batch(v, defined, None).map_err(parquet)?;
                    v.clear();
                }
                Values::Bool(v) => {
                    writer.typed::<BoolType>().write_batch(v, defined, None).map_err(parquet)?;
                    v.clear();
                }
                Values::Date(v) => {
                    writer.typed::<Int32Type>().write_batch(v, defined, None).map_err(parquet)?;
                    v.clear();
                }
                Values::Text(v) => {
                    writer.typed::<ByteArrayType>().write_batch(v, defined, None).map_err(parquet)?;
                    v.clear();
                }
            }
            column.defined.clear();
            writer.close().map_err(parquet)?;
        }
        group.close().map_err(parquet)?;
        self.rows = 0;
        self.writer.flush()?;
        // The writer counts the bytes it wrote for its offsets; taking them out of the
        // buffer does not change that count.
        Ok(std::mem::take(self.writer.inner_mut()))
    }

    /// The last row group and the footer.
    pub(crate) fn close(mut self) -> Result<Vec<u8>, ExportError> {
        let mut out = self.flush_group()?;
        out.extend(self.writer.into_inner().map_err(parquet)?);
        Ok(out)
    }
}
