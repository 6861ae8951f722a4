//! The export's decoded-value columns, after every other column: `value_text` and
//! `value_truncated` (what CSV's `value` and `value_truncated` say, from the same
//! [`crate::output::value_of`]), and one struct column per fixed C struct the decoder knows
//! (`tcp_info`, `linger`, `ucred`, `timeval`), typed from [`decode::struct_fields`] so the
//! columns and the decoder cannot drift apart.
//!
//! A struct column is null unless the call returned that struct; inside it, a field is null
//! when the bytes captured end before it (an older kernel's shorter `tcp_info`, a small
//! buffer, the snap length): a field that was not returned never reads as zero.

use std::sync::{Arc, OnceLock};

use arrow_array::builder::StringBuilder;
use arrow_array::types::{
    ArrowPrimitiveType, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{ArrayRef, BooleanArray, PrimitiveArray, StringArray, StructArray};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer, bit_util};
use arrow_schema::{DataType, Field, Fields};
use format::Event;

use crate::decode::{self, DataField, FieldType, Kind, Value, levels};
use crate::output::value_of;

/// The struct columns in column order: name, and the decoder kinds whose values fill it.
const STRUCTS: &[(&str, &[Kind])] = &[
    ("tcp_info", &[Kind::TcpInfo]),
    ("linger", &[Kind::Linger]),
    ("ucred", &[Kind::Ucred]),
    ("timeval", &[Kind::TimevalOld, Kind::TimevalNew]),
];

/// How many columns this module makes: `value_text`, `value_truncated` and the structs.
pub const COLUMNS: usize = 2 + STRUCTS.len();

/// Index into [`STRUCTS`] of the struct column named in `COLUMNS` (see `ColType::Struct`).
pub const TCP_INFO: usize = 0;
pub const LINGER: usize = 1;
pub const UCRED: usize = 2;
pub const TIMEVAL: usize = 3;

/// The decoder's fields of each struct column, and their Arrow fields.
struct Layout {
    fields: Vec<DataField>,
    arrow: Fields,
}

fn layouts() -> &'static [Layout] {
    static L: OnceLock<Vec<Layout>> = OnceLock::new();
    L.get_or_init(|| {
        STRUCTS
            .iter()
            .map(|(_, kinds)| {
                let fields = decode::struct_fields(kinds[0]).expect("a struct kind");
                let arrow = fields
                    .iter()
                    .map(|f| Field::new(column_name(f), arrow_type(f.ty), true))
                    .collect();
                Layout { fields, arrow }
            })
            .collect()
    })
}

/// A field's column name: the decoder's name, with its unit as a suffix (`rtt_us`).
fn column_name(f: &DataField) -> String {
    if f.unit.is_empty() {
        f.name.to_string()
    } else {
        format!("{}_{}", f.name, f.unit)
    }
}

fn arrow_type(t: FieldType) -> DataType {
    match t {
        FieldType::Text => DataType::Utf8,
        FieldType::U8 => DataType::UInt8,
        FieldType::U16 => DataType::UInt16,
        FieldType::U32 => DataType::UInt32,
        FieldType::U64 => DataType::UInt64,
        FieldType::I32 => DataType::Int32,
        FieldType::I64 => DataType::Int64,
    }
}

/// The Arrow type of struct column `i`.
pub fn struct_type(i: usize) -> DataType {
    DataType::Struct(layouts()[i].arrow.clone())
}

/// One child of a struct column: a slot for every row of the chunk, as Arrow wants (a null
/// row still has one), set only where a row has the field. Most rows are null in every
/// struct column but one, so the slots start zeroed (fresh zeroed memory is not even touched
/// until written) and a null row costs the children nothing.
struct Child {
    values: Values,
    /// Validity bits, one per row, zero (null) until set.
    valid: Vec<u8>,
}

enum Values {
    /// Offsets are written up to the last row set, and the rest at finish.
    Text {
        offsets: Vec<i32>,
        bytes: Vec<u8>,
    },
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    I32(Vec<i32>),
    I64(Vec<i64>),
}

fn unsigned(v: &Value) -> Option<u64> {
    match v {
        Value::UInt(x) | Value::Hex(x) | Value::Unit(x, _) => Some(*x),
        Value::Int(x) => u64::try_from(*x).ok(),
        _ => None,
    }
}

fn signed(v: &Value) -> Option<i64> {
    match v {
        Value::Int(x) => Some(*x),
        Value::UInt(x) | Value::Hex(x) | Value::Unit(x, _) => i64::try_from(*x).ok(),
        _ => None,
    }
}

/// A primitive child's values as an Arrow array of `rows` rows.
fn primitive<T: ArrowPrimitiveType>(
    mut v: Vec<T::Native>,
    rows: usize,
    nulls: Option<NullBuffer>,
) -> ArrayRef {
    v.truncate(rows);
    v.shrink_to_fit();
    Arc::new(PrimitiveArray::<T>::new(ScalarBuffer::from(v), nulls))
}

impl Child {
    /// A child of `rows` null rows.
    fn new(t: FieldType, rows: usize) -> Child {
        let values = match t {
            FieldType::Text => {
                let mut offsets = Vec::with_capacity(rows + 1);
                offsets.push(0);
                Values::Text {
                    offsets,
                    bytes: Vec::new(),
                }
            }
            FieldType::U8 => Values::U8(vec![0; rows]),
            FieldType::U16 => Values::U16(vec![0; rows]),
            FieldType::U32 => Values::U32(vec![0; rows]),
            FieldType::U64 => Values::U64(vec![0; rows]),
            FieldType::I32 => Values::I32(vec![0; rows]),
            FieldType::I64 => Values::I64(vec![0; rows]),
        };
        Child {
            values,
            valid: vec![0; rows.div_ceil(8)],
        }
    }

    /// Sets row `row` to `v`. The decoder reads each field at its own width, so the narrowing
    /// casts keep every bit; a value of another shape leaves the row null.
    fn set(&mut self, row: usize, v: &Value, scratch: &mut String) {
        let set = match &mut self.values {
            Values::Text { offsets, bytes } => {
                scratch.clear();
                v.write_text(scratch);
                // The rows since the last one set are null: empty, at the current end.
                offsets.resize(row + 1, bytes.len() as i32);
                bytes.extend_from_slice(scratch.as_bytes());
                // A chunk is one block: its text is far below 2 GiB.
                offsets.push(bytes.len() as i32);
                true
            }
            Values::U8(b) => unsigned(v).map(|x| b[row] = x as u8).is_some(),
            Values::U16(b) => unsigned(v).map(|x| b[row] = x as u16).is_some(),
            Values::U32(b) => unsigned(v).map(|x| b[row] = x as u32).is_some(),
            Values::U64(b) => unsigned(v).map(|x| b[row] = x).is_some(),
            Values::I32(b) => signed(v).map(|x| b[row] = x as i32).is_some(),
            Values::I64(b) => signed(v).map(|x| b[row] = x).is_some(),
        };
        if set {
            bit_util::set_bit(&mut self.valid, row);
        }
    }

    /// The child's first `rows` rows.
    fn finish(self, rows: usize) -> ArrayRef {
        let mut valid = self.valid;
        valid.truncate(rows.div_ceil(8));
        valid.shrink_to_fit();
        let nulls = NullBuffer::new(BooleanBuffer::new(Buffer::from_vec(valid), 0, rows));
        let nulls = (nulls.null_count() > 0).then_some(nulls);
        match self.values {
            Values::Text { mut offsets, bytes } => {
                offsets.resize(rows + 1, bytes.len() as i32);
                offsets.shrink_to_fit();
                Arc::new(StringArray::new(
                    // Offsets start at 0 and never decrease; each value is a whole String.
                    OffsetBuffer::new(ScalarBuffer::from(offsets)),
                    Buffer::from_vec(bytes),
                    nulls,
                ))
            }
            Values::U8(v) => primitive::<UInt8Type>(v, rows, nulls),
            Values::U16(v) => primitive::<UInt16Type>(v, rows, nulls),
            Values::U32(v) => primitive::<UInt32Type>(v, rows, nulls),
            Values::U64(v) => primitive::<UInt64Type>(v, rows, nulls),
            Values::I32(v) => primitive::<Int32Type>(v, rows, nulls),
            Values::I64(v) => primitive::<Int64Type>(v, rows, nulls),
        }
    }
}

struct StructColumn {
    children: Vec<Child>,
    valid: Vec<bool>,
}

impl StructColumn {
    fn new(l: &Layout, rows: usize) -> StructColumn {
        StructColumn {
            children: l.fields.iter().map(|f| Child::new(f.ty, rows)).collect(),
            valid: Vec::with_capacity(rows),
        }
    }

    /// The next row: the decoded fields, a prefix of the layout's (a short value stops early),
    /// or `None` for a null row.
    fn push(&mut self, l: &Layout, fields: Option<&[(&str, Value)]>, scratch: &mut String) {
        let row = self.valid.len();
        let fields = fields.unwrap_or_default();
        self.valid.push(!fields.is_empty());
        let mut given = fields.iter().peekable();
        for (child, f) in self.children.iter_mut().zip(&l.fields) {
            let Some((name, v)) = given.peek() else { break };
            if *name == f.name {
                child.set(row, v, scratch);
                given.next();
            }
        }
    }

    fn finish(self, l: &Layout) -> ArrayRef {
        let rows = self.valid.len();
        let arrays = self.children.into_iter().map(|c| c.finish(rows)).collect();
        Arc::new(
            StructArray::try_new(l.arrow.clone(), arrays, super::nulls(self.valid))
                .expect("every child has one value per row"),
        )
    }
}

/// The decoded-value columns of one chunk, grown one event at a time.
pub struct Columns {
    text: StringBuilder,
    truncated: Vec<bool>,
    structs: Vec<StructColumn>,
    scratch: String,
}

impl Columns {
    /// Columns for at most `rows` rows.
    pub fn with_capacity(rows: usize) -> Columns {
        Columns {
            // Most values' text is short; tcp_info's is long, and the builder grows for it.
            text: StringBuilder::with_capacity(rows, rows * 8),
            truncated: Vec::with_capacity(rows),
            structs: layouts()
                .iter()
                .map(|l| StructColumn::new(l, rows))
                .collect(),
            scratch: String::new(),
        }
    }
}

impl Columns {
    pub fn push(&mut self, e: &Event<'_>) {
        let d = value_of(e);
        match &d {
            Some(d) => {
                self.scratch.clear();
                d.value.write_text(&mut self.scratch);
                self.text.append_value(&self.scratch);
            }
            None => self.text.append_null(),
        }
        self.truncated.push(d.as_ref().is_some_and(|d| d.truncated));
        let kind = levels::option(e.level, e.optname).map(|o| o.kind);
        let fields = match d.as_ref().map(|d| &d.value) {
            Some(Value::Struct(f)) => Some(f.as_slice()),
            _ => None,
        };
        for (i, (col, l)) in self.structs.iter_mut().zip(layouts()).enumerate() {
            let mine = kind.is_some_and(|k| STRUCTS[i].1.contains(&k));
            col.push(l, fields.filter(|_| mine), &mut self.scratch);
        }
    }

    /// The arrays, in `COLUMNS` order.
    pub fn finish(mut self) -> Vec<ArrayRef> {
        let mut out: Vec<ArrayRef> = vec![
            Arc::new(self.text.finish()),
            Arc::new(BooleanArray::from(self.truncated)),
        ];
        for (col, l) in self.structs.into_iter().zip(layouts()) {
            out.push(col.finish(l));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_columns_are_named_by_their_index() {
        assert_eq!(STRUCTS[TCP_INFO].0, "tcp_info");
        assert_eq!(STRUCTS[LINGER].0, "linger");
        assert_eq!(STRUCTS[UCRED].0, "ucred");
        assert_eq!(STRUCTS[TIMEVAL].0, "timeval");
        let DataType::Struct(f) = struct_type(TCP_INFO) else {
            panic!("a struct");
        };
        assert_eq!(f[0].name(), "state");
        assert!(f.iter().any(|f| f.name() == "rtt_us"));
        assert!(f.iter().any(|f| f.name() == "last_data_sent_ms"));
    }

    #[test]
    fn readme_documents_every_struct_field_in_order() {
        let readme = include_str!("../../../README.md");
        let schema = &readme[readme
            .find("## Parquet schema")
            .expect("the schema section")..];
        // The small structs: their whole type in the table.
        for i in [LINGER, UCRED, TIMEVAL] {
            let fields: Vec<String> = layouts()[i]
                .fields
                .iter()
                .map(|f| format!("{} {}", column_name(f), type_name(f.ty)))
                .collect();
            let ty = format!("| `{}` | struct<{}> |", STRUCTS[i].0, fields.join(", "));
            assert!(schema.contains(&ty), "README lacks {ty}");
        }
        // tcp_info: every name, in order, in the paragraph that lists them.
        let mut at = schema
            .find("The fields, in order:")
            .expect("the tcp_info list");
        for f in &layouts()[TCP_INFO].fields {
            let quoted = format!("`{}`", column_name(f));
            let rel = schema[at..].find(&quoted);
            at += rel.unwrap_or_else(|| panic!("README lacks tcp_info {quoted} (in order)"));
        }
    }

    fn type_name(t: FieldType) -> &'static str {
        match t {
            FieldType::Text => "utf8",
            FieldType::U8 => "uint8",
            FieldType::U16 => "uint16",
            FieldType::U32 => "uint32",
            FieldType::U64 => "uint64",
            FieldType::I32 => "int32",
            FieldType::I64 => "int64",
        }
    }
}
