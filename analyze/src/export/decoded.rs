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

use arrow_array::builder::{
    Int32Builder, Int64Builder, StringBuilder, UInt8Builder, UInt16Builder, UInt32Builder,
    UInt64Builder,
};
use arrow_array::{ArrayRef, BooleanArray, StructArray};
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

enum Child {
    Text(StringBuilder),
    U8(UInt8Builder),
    U16(UInt16Builder),
    U32(UInt32Builder),
    U64(UInt64Builder),
    I32(Int32Builder),
    I64(Int64Builder),
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

impl Child {
    fn new(t: FieldType) -> Child {
        match t {
            FieldType::Text => Child::Text(StringBuilder::new()),
            FieldType::U8 => Child::U8(UInt8Builder::new()),
            FieldType::U16 => Child::U16(UInt16Builder::new()),
            FieldType::U32 => Child::U32(UInt32Builder::new()),
            FieldType::U64 => Child::U64(UInt64Builder::new()),
            FieldType::I32 => Child::I32(Int32Builder::new()),
            FieldType::I64 => Child::I64(Int64Builder::new()),
        }
    }

    /// Appends `v` (null if absent). The decoder reads each field at its own width, so the
    /// narrowing casts keep every bit.
    fn push(&mut self, v: Option<&Value>, scratch: &mut String) {
        match self {
            Child::Text(b) => match v {
                Some(v) => {
                    scratch.clear();
                    v.write_text(scratch);
                    b.append_value(&*scratch);
                }
                None => b.append_null(),
            },
            Child::U8(b) => b.append_option(v.and_then(unsigned).map(|x| x as u8)),
            Child::U16(b) => b.append_option(v.and_then(unsigned).map(|x| x as u16)),
            Child::U32(b) => b.append_option(v.and_then(unsigned).map(|x| x as u32)),
            Child::U64(b) => b.append_option(v.and_then(unsigned)),
            Child::I32(b) => b.append_option(v.and_then(signed).map(|x| x as i32)),
            Child::I64(b) => b.append_option(v.and_then(signed)),
        }
    }

    fn nulls(&mut self, n: usize) {
        match self {
            Child::Text(b) => b.append_nulls(n),
            Child::U8(b) => b.append_nulls(n),
            Child::U16(b) => b.append_nulls(n),
            Child::U32(b) => b.append_nulls(n),
            Child::U64(b) => b.append_nulls(n),
            Child::I32(b) => b.append_nulls(n),
            Child::I64(b) => b.append_nulls(n),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Child::Text(b) => Arc::new(b.finish()),
            Child::U8(b) => Arc::new(b.finish()),
            Child::U16(b) => Arc::new(b.finish()),
            Child::U32(b) => Arc::new(b.finish()),
            Child::U64(b) => Arc::new(b.finish()),
            Child::I32(b) => Arc::new(b.finish()),
            Child::I64(b) => Arc::new(b.finish()),
        }
    }
}

struct StructColumn {
    children: Vec<Child>,
    valid: Vec<bool>,
    /// Null rows not yet given to the children: most rows are null in every struct column
    /// but one, so they are added in runs rather than one by one in each of ~70 children.
    gap: usize,
}

impl StructColumn {
    fn new(l: &Layout) -> StructColumn {
        StructColumn {
            children: l.fields.iter().map(|f| Child::new(f.ty)).collect(),
            valid: Vec::new(),
            gap: 0,
        }
    }

    fn close_gap(&mut self) {
        if self.gap > 0 {
            for c in &mut self.children {
                c.nulls(self.gap);
            }
            self.gap = 0;
        }
    }

    /// One row: the decoded fields, a prefix of the layout's (a short value stops early), or
    /// `None` for a null row.
    fn push(&mut self, l: &Layout, fields: Option<&[(&str, Value)]>, scratch: &mut String) {
        let fields = fields.unwrap_or_default();
        self.valid.push(!fields.is_empty());
        if fields.is_empty() {
            self.gap += 1;
            return;
        }
        self.close_gap();
        let mut given = fields.iter();
        let mut next = given.next();
        for (child, f) in self.children.iter_mut().zip(&l.fields) {
            let v = match next {
                Some((name, v)) if *name == f.name => {
                    next = given.next();
                    Some(v)
                }
                _ => None,
            };
            child.push(v, scratch);
        }
    }

    fn finish(mut self, l: &Layout) -> ArrayRef {
        self.close_gap();
        let arrays = self.children.iter_mut().map(Child::finish).collect();
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

impl Default for Columns {
    fn default() -> Columns {
        Columns {
            text: StringBuilder::new(),
            truncated: Vec::new(),
            structs: layouts().iter().map(StructColumn::new).collect(),
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
