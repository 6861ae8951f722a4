//! The Arrow/Parquet side of `analyze export`: the table schema, the conversion of a decoded
//! block into Arrow arrays, and the Parquet sink that encodes columns in parallel.
//!
//! The schema is the contract with notebooks and query engines: [`COLUMNS`] is the single
//! source of the column names, types and meanings. It is written into every Parquet file's
//! key-value metadata (`gsot.schema`) and documented in the README ("Parquet schema"); the
//! Python tests check that pyarrow and DuckDB see exactly these types.

pub mod aggregates;
pub mod decoded;
pub mod progress;
pub mod sink;
pub mod table;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, BinaryArray, DictionaryArray, Int32Array, Int64Array, PrimitiveArray, StringArray,
    TimestampNanosecondArray, UInt16Array, UInt32Array, UInt64Array, new_null_array,
};
use arrow_buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use format::raw::{FLAG_VALUE_TRUNCATED, FLAG_VALUE_UNREADABLE};
use format::{BlockInfo, CaptureHeader, DecodedBlock};

use crate::decode::cgroup;
use crate::decode::{Kind, errno, hex_into, json_string, levels};
use crate::filter::{FileFilter, Filter, FilterArgs, FilterError, Tri, to_wall};
use crate::input::{Input, for_each_selected, selected_blocks, span, time_order};
use crate::socket::{FieldValue, SOCKET_FIELDS};

/// The Arrow type of a column, as named in the docs and the `gsot.schema` metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColType {
    TimestampUtc,
    U16,
    U32,
    U64,
    I32,
    I64,
    /// Dictionary(Int32, Utf8).
    DictUtf8,
    Binary,
    Utf8,
    Bool,
    /// One of [`decoded`]'s struct columns (`decoded::TCP_INFO`, ...).
    Struct(usize),
}

impl ColType {
    pub fn arrow(self) -> DataType {
        match self {
            ColType::TimestampUtc => DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            ColType::U16 => DataType::UInt16,
            ColType::U32 => DataType::UInt32,
            ColType::U64 => DataType::UInt64,
            ColType::I32 => DataType::Int32,
            ColType::I64 => DataType::Int64,
            ColType::DictUtf8 => {
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
            }
            ColType::Binary => DataType::Binary,
            ColType::Utf8 => DataType::Utf8,
            ColType::Bool => DataType::Boolean,
            ColType::Struct(i) => decoded::struct_type(i),
        }
    }

    /// The name used in the docs and in `gsot.schema`.
    pub fn name(self) -> &'static str {
        match self {
            ColType::TimestampUtc => "timestamp[ns, tz=UTC]",
            ColType::U16 => "uint16",
            ColType::U32 => "uint32",
            ColType::U64 => "uint64",
            ColType::I32 => "int32",
            ColType::I64 => "int64",
            ColType::DictUtf8 => "dictionary<int32, utf8>",
            ColType::Binary => "binary",
            ColType::Utf8 => "utf8",
            ColType::Bool => "bool",
            ColType::Struct(_) => "struct",
        }
    }
}

/// One column of the export: name, type, nullability, meaning.
pub struct Column {
    pub name: &'static str,
    pub ty: ColType,
    pub nullable: bool,
    pub meaning: &'static str,
}

const fn col(name: &'static str, ty: ColType, nullable: bool, meaning: &'static str) -> Column {
    Column {
        name,
        ty,
        nullable,
        meaning,
    }
}

/// Indexes into [`COLUMNS`], so the builder and the schema cannot drift apart.
mod c {
    pub const TIME: usize = 0;
    pub const HOST: usize = 27;
    pub const CAPTURE_ID: usize = 28;
}

/// The columns of the export, in file order. Names match `analyze events --format json`
/// where the field exists there. New columns may be appended; existing ones keep their name,
/// type and meaning.
pub const COLUMNS: &[Column] = &[
    col(
        "time",
        ColType::TimestampUtc,
        false,
        "wall-clock time at syscall entry (boot time + the header's boot_to_wall_ns)",
    ),
    col(
        "ts_ns",
        ColType::U64,
        false,
        "boot-time ns at syscall entry, as recorded",
    ),
    col(
        "duration_ns",
        ColType::U64,
        false,
        "syscall entry to exit, ns",
    ),
    col("pid", ColType::U32, false, "process id (tgid)"),
    col("tid", ColType::U32, false, "thread id"),
    col("ppid", ColType::U32, false, "parent process id"),
    col("uid", ColType::U32, false, "user id"),
    col("gid", ColType::U32, false, "group id"),
    col("comm", ColType::DictUtf8, false, "task name (lossy UTF-8)"),
    col("cgroup_id", ColType::U64, false, "cgroup v2 id"),
    col("pid_ns", ColType::U32, false, "pid namespace inode"),
    col("mnt_ns", ColType::U32, false, "mount namespace inode"),
    col("cpu", ColType::U32, false, "CPU the call returned on"),
    col("fd", ColType::I32, false, "socket file descriptor"),
    col("level", ColType::I32, false, "socket level number"),
    col(
        "level_name",
        ColType::DictUtf8,
        true,
        "socket level name (SOL_TCP); null if unknown",
    ),
    col("optname", ColType::I32, false, "option number"),
    col(
        "optname_name",
        ColType::DictUtf8,
        true,
        "option name within its level (TCP_INFO); null if unknown",
    ),
    col("optlen_in", ColType::I32, false, "*optlen passed in"),
    col("optlen_out", ColType::I32, false, "*optlen returned"),
    col("ret", ColType::I32, false, "return value: 0 or -errno"),
    col(
        "errno",
        ColType::DictUtf8,
        true,
        "errno name (EINVAL) when the call failed, the number as text if unnamed; null on success",
    ),
    col(
        "flags",
        ColType::U16,
        false,
        "recorder flags: 1 value truncated to snaplen, 2 value unreadable, 4 optlen unreadable at entry, 8 at exit",
    ),
    col("optval_ptr", ColType::U64, false, "optval pointer argument"),
    col("optlen_ptr", ColType::U64, false, "optlen pointer argument"),
    col(
        "value",
        ColType::Binary,
        false,
        "captured option value bytes (at most the snap length)",
    ),
    col(
        "value_int",
        ColType::I64,
        true,
        "the value as an integer for integer options (SO_RCVBUF, TCP_NODELAY, SO_ERROR, ...) when the call succeeded and the bytes are exactly one whole integer; null otherwise",
    ),
    col(
        "host",
        ColType::DictUtf8,
        false,
        "host name from the trace header (a partition column instead with --partition-by host)",
    ),
    col(
        "capture_id",
        ColType::DictUtf8,
        false,
        "capture id from the trace header, 32 hex digits",
    ),
    attr_col(0),
    attr_col(1),
    attr_col(2),
    attr_col(3),
    attr_col(4),
    attr_col(5),
    attr_col(6),
    attr_col(7),
    attr_col(8),
    attr_col(9),
    // The decoded value (export::decoded), after the columns of the recorded fields.
    col(
        "value_text",
        ColType::Utf8,
        true,
        "the decoded value as analyze events shows it and CSV's value is (SOCK_STREAM, {pid=.., uid=.., gid=..}, \"bbr\", ECONNREFUSED); null when the call failed or the value was unreadable",
    ),
    col(
        "value_truncated",
        ColType::Bool,
        false,
        "true when the value was decoded only in part (snap length, or a cut field), as in events' value_truncated",
    ),
    col(
        "tcp_info",
        ColType::Struct(decoded::TCP_INFO),
        true,
        "struct tcp_info, every field the decoder knows, units in the names (rtt_us); null unless the call returned a tcp_info; a field beyond the bytes captured is null",
    ),
    col(
        "linger",
        ColType::Struct(decoded::LINGER),
        true,
        "struct linger (SO_LINGER): l_onoff, l_linger; null otherwise",
    ),
    col(
        "ucred",
        ColType::Struct(decoded::UCRED),
        true,
        "struct ucred (SO_PEERCRED): pid, uid, gid; null otherwise",
    ),
    col(
        "timeval",
        ColType::Struct(decoded::TIMEVAL),
        true,
        "struct timeval (SO_RCVTIMEO, SO_SNDTIMEO, old and new): tv_sec, tv_usec; null otherwise",
    ),
    // Since format 1.2, appended after the columns that landed before them: the call's socket
    // (crate::socket::SOCKET_FIELDS, in its order); null when the call has no socket (not
    // recorded, or the fd was not a socket) or the field is not its family's.
    col(
        "sock_family",
        ColType::DictUtf8,
        true,
        "socket's address family (AF_INET, AF_INET6, AF_UNIX, AF_NETLINK, ...; the number as text if unnamed)",
    ),
    col(
        "sock_type",
        ColType::DictUtf8,
        true,
        "socket type (SOCK_STREAM, SOCK_DGRAM, ...)",
    ),
    col(
        "sock_protocol",
        ColType::U16,
        true,
        "protocol number (IPPROTO_* for IP, NETLINK_* for netlink)",
    ),
    col(
        "tcp_state",
        ColType::DictUtf8,
        true,
        "TCP state (ESTABLISHED, LISTEN, ...); null when not TCP",
    ),
    col(
        "local_addr",
        ColType::DictUtf8,
        true,
        "local IP address, canonical text (fe80::1%2 with a scope)",
    ),
    col("local_port", ColType::U16, true, "local port (IP sockets)"),
    col(
        "remote_addr",
        ColType::DictUtf8,
        true,
        "remote IP address, canonical text",
    ),
    col(
        "remote_port",
        ColType::U16,
        true,
        "remote port (IP sockets)",
    ),
    col(
        "unix_path",
        ColType::DictUtf8,
        true,
        "Unix socket's bound name (@name when abstract, \\xNN for other bytes)",
    ),
    col(
        "unix_peer",
        ColType::DictUtf8,
        true,
        "Unix socket peer's bound name",
    ),
    col("sock_ino", ColType::U64, true, "socket inode (socket:[N])"),
    col("netns", ColType::U32, true, "network namespace inode"),
];

/// The `i`th attribution field as a column: dictionary strings, null where unknown.
const fn attr_col(i: usize) -> Column {
    col(
        cgroup::FIELDS[i].1,
        ColType::DictUtf8,
        true,
        cgroup::FIELDS[i].2,
    )
}

/// How many attribution columns follow `capture_id`.
const ATTR_COLUMNS: usize = cgroup::FIELDS.len();

/// Where the decoded-value columns ([`decoded`]) start in [`COLUMNS`]: after the attribution
/// columns.
pub const DECODED_COLUMNS_AT: usize = c::CAPTURE_ID + 1 + ATTR_COLUMNS;

/// Where the socket columns start in [`COLUMNS`]: they end it, having landed after the
/// attribution and decoded-value columns (a unit test holds the order).
const SOCKET_COLUMNS_AT: usize = COLUMNS.len() - SOCKET_FIELDS.len();

/// The Arrow schema of the export, without the columns that became partition directories.
pub fn schema(drop_host: bool) -> SchemaRef {
    let fields: Vec<Field> = COLUMNS
        .iter()
        .enumerate()
        .filter(|(i, _)| !(drop_host && *i == c::HOST))
        .map(|(_, col)| Field::new(col.name, col.ty.arrow(), col.nullable))
        .collect();
    Arc::new(Schema::new(fields))
}

/// `gsot.schema`: the columns as JSON, for readers that want the meanings too.
pub fn schema_json(drop_host: bool) -> String {
    let mut s = String::from("{\"version\":1,\"columns\":[");
    let mut first = true;
    for (i, col) in COLUMNS.iter().enumerate() {
        if drop_host && i == c::HOST {
            continue;
        }
        if !first {
            s.push(',');
        }
        first = false;
        s.push_str("{\"name\":");
        json_string(&mut s, col.name);
        s.push_str(",\"type\":");
        json_string(&mut s, col.ty.name());
        let _ = write!(s, ",\"nullable\":{},\"meaning\":", col.nullable);
        json_string(&mut s, col.meaning);
        s.push('}');
    }
    s.push_str("]}");
    s
}

/// A trace header as a JSON object (the `gsot.headers` metadata), with the file it came from.
pub fn header_json(path: &str, h: &CaptureHeader) -> String {
    let mut s = String::from("{\"file\":");
    json_string(&mut s, path);
    s.push(',');
    crate::output::header_fields(&mut s, h);
    s.push('}');
    s
}

pub fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    hex_into(&mut s, b);
    s
}

/// How an option's value becomes `value_int`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IntLayout {
    /// A C `int` (4 bytes, signed), or the single byte some int options return.
    I32,
    /// An unsigned 32-bit value (or a single byte).
    U32,
    /// Exactly 8 bytes, unsigned; null if it does not fit an int64.
    U64,
    /// 4 or 8 bytes, unsigned.
    U32OrU64,
}

/// Which options have an integer value, from the decoder's own tables.
fn int_layout(level: i32, optname: i32) -> Option<IntLayout> {
    let kind = levels::option(level, optname)?.kind;
    Some(match kind {
        Kind::Int
        | Kind::Bool
        | Kind::Errno
        | Kind::Domain
        | Kind::SockType
        | Kind::Protocol
        | Kind::PmtuDisc
        | Kind::Pmtu6Disc
        | Kind::Tos
        | Kind::UdpEncap
        | Kind::PacketVersion => IntLayout::I32,
        Kind::U32 | Kind::Mask32 | Kind::PortRange => IntLayout::U32,
        Kind::U64 => IntLayout::U64,
        Kind::U32OrU64 => IntLayout::U32OrU64,
        _ => return None,
    })
}

/// The integer a successful call returned, if its bytes are exactly one integer of the
/// option's layout. Anything else (failed call, truncated or unreadable value, odd length)
/// is null rather than a guess.
fn value_int(layout: IntLayout, bytes: &[u8]) -> Option<i64> {
    let u32_of = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("4 bytes"));
    match (layout, bytes.len()) {
        (IntLayout::I32 | IntLayout::U32, 1) => Some(bytes[0] as i64),
        (IntLayout::I32, 4) => Some(u32_of(bytes) as i32 as i64),
        (IntLayout::U32 | IntLayout::U32OrU64, 4) => Some(u32_of(bytes) as i64),
        (IntLayout::U64 | IntLayout::U32OrU64, 8) => {
            i64::try_from(u64::from_le_bytes(bytes.try_into().expect("8 bytes"))).ok()
        }
        _ => None,
    }
}

/// What an export reads: the filter, the inputs in the order their rows are written (of
/// their first event) and the blocks the filter selects in each. `analyze export` and
/// `gsot.read` both start here, so the two cannot select different rows.
pub struct Selection {
    pub filter: Filter,
    /// Indexes into the inputs, in output order.
    pub order: Vec<usize>,
    /// Per input (in the inputs' order): its selected blocks.
    pub blocks: Vec<Vec<BlockInfo>>,
}

impl Selection {
    pub fn new(inputs: &[Input], args: &FilterArgs) -> Result<Selection, FilterError> {
        // The container columns need the attribution, whether or not the filter does.
        let filter = Filter::new(args, span(inputs))?.with_attribution();
        let blocks = inputs
            .iter()
            .map(|i| selected_blocks(&i.reader, &filter.for_file(&i.reader)))
            .collect();
        Ok(Selection {
            filter,
            order: time_order(inputs).0,
            blocks,
        })
    }
}

/// What a block's rows carry from their file.
pub struct FileColumns {
    pub host: String,
    pub capture_id: String,
    pub boot_to_wall: i64,
}

impl FileColumns {
    pub fn of(h: &CaptureHeader) -> FileColumns {
        FileColumns {
            host: h.host_name.clone(),
            capture_id: hex(&h.capture_id),
            boot_to_wall: h.boot_to_wall_ns,
        }
    }
}

/// Unix ns to the UTC day number since 1970-01-01 (the `date` partition).
pub fn day_of(unix_ns: i64) -> i64 {
    unix_ns.div_euclid(86_400 * 1_000_000_000)
}

/// The columns of the selected events of one block (or one day of it), as Arrow arrays in
/// [`schema`] order.
pub struct Chunk {
    pub rows: usize,
    /// UTC day of the rows (all rows of a chunk share it when split by day).
    pub day: i64,
    pub columns: Vec<ArrayRef>,
}

/// Per-site facts computed once per block rather than once per event.
struct SiteFacts {
    comm_key: i32,
    level_key: Option<i32>,
    opt_key: Option<i32>,
    errno_key: Option<i32>,
    /// `value_int`'s layout if the call succeeded with an intact value.
    int_layout: Option<IntLayout>,
    /// The socket columns' cells, in column order.
    socket: Vec<SockCell>,
}

/// One cell of a socket column: a dictionary key, a number, or null.
#[derive(Clone, Copy)]
enum SockCell {
    Null,
    Key(i32),
    Num(u64),
}

/// One socket column of a chunk.
struct SockColumn {
    keys: Vec<i32>,
    nums: Vec<u64>,
    valid: Vec<bool>,
}

impl SockColumn {
    fn with_capacity(rows: usize) -> SockColumn {
        SockColumn {
            keys: Vec::with_capacity(rows),
            nums: Vec::with_capacity(rows),
            valid: Vec::with_capacity(rows),
        }
    }

    fn push(&mut self, c: SockCell) {
        let (k, n, v) = match c {
            SockCell::Null => (0, 0, false),
            SockCell::Key(k) => (k, 0, true),
            SockCell::Num(n) => (0, n, true),
        };
        self.keys.push(k);
        self.nums.push(n);
        self.valid.push(v);
    }

    fn array(self, ty: ColType, dict: &Arc<StringArray>) -> ArrayRef {
        let nulls = nulls(self.valid);
        match ty {
            ColType::U16 => Arc::new(UInt16Array::new(
                self.nums.into_iter().map(|n| n as u16).collect(),
                nulls,
            )),
            ColType::U32 => Arc::new(UInt32Array::new(
                self.nums.into_iter().map(|n| n as u32).collect(),
                nulls,
            )),
            ColType::U64 => Arc::new(UInt64Array::new(ScalarBuffer::from(self.nums), nulls)),
            _ => {
                let keys = PrimitiveArray::<Int32Type>::new(ScalarBuffer::from(self.keys), nulls);
                Arc::new(
                    DictionaryArray::<Int32Type>::try_new(keys, dict.clone() as ArrayRef)
                        .expect("keys index the block's dictionary"),
                )
            }
        }
    }
}

/// The columns of one chunk, grown one row at a time.
struct Builder {
    time: Vec<i64>,
    ts: Vec<u64>,
    duration: Vec<u64>,
    pid: Vec<u32>,
    tid: Vec<u32>,
    ppid: Vec<u32>,
    uid: Vec<u32>,
    gid: Vec<u32>,
    comm: Vec<i32>,
    cgroup: Vec<u64>,
    pid_ns: Vec<u32>,
    mnt_ns: Vec<u32>,
    cpu: Vec<u32>,
    fd: Vec<i32>,
    level: Vec<i32>,
    level_name: Vec<i32>,
    level_valid: Vec<bool>,
    optname: Vec<i32>,
    opt_name: Vec<i32>,
    opt_valid: Vec<bool>,
    optlen_in: Vec<i32>,
    optlen_out: Vec<i32>,
    ret: Vec<i32>,
    errno: Vec<i32>,
    errno_valid: Vec<bool>,
    flags: Vec<u16>,
    optval_ptr: Vec<u64>,
    optlen_ptr: Vec<u64>,
    value_offsets: Vec<i32>,
    values: Vec<u8>,
    value_int: Vec<i64>,
    value_int_valid: Vec<bool>,
    /// Per attribution field: dictionary keys, and whether the value is known.
    attr: [(Vec<i32>, Vec<bool>); ATTR_COLUMNS],
    /// `None` when the decoded-value columns are not wanted.
    decoded: Option<decoded::Columns>,
    socket: Vec<SockColumn>,
}

impl Builder {
    /// A builder for at most `rows` rows and `value_bytes` of values: sized once, so no
    /// column is copied as it grows.
    fn with_capacity(rows: usize, value_bytes: usize, decoded: bool) -> Builder {
        let mut value_offsets = Vec::with_capacity(rows + 1);
        value_offsets.push(0);
        Builder {
            time: Vec::with_capacity(rows),
            ts: Vec::with_capacity(rows),
            duration: Vec::with_capacity(rows),
            pid: Vec::with_capacity(rows),
            tid: Vec::with_capacity(rows),
            ppid: Vec::with_capacity(rows),
            uid: Vec::with_capacity(rows),
            gid: Vec::with_capacity(rows),
            comm: Vec::with_capacity(rows),
            cgroup: Vec::with_capacity(rows),
            pid_ns: Vec::with_capacity(rows),
            mnt_ns: Vec::with_capacity(rows),
            cpu: Vec::with_capacity(rows),
            fd: Vec::with_capacity(rows),
            level: Vec::with_capacity(rows),
            level_name: Vec::with_capacity(rows),
            level_valid: Vec::with_capacity(rows),
            optname: Vec::with_capacity(rows),
            opt_name: Vec::with_capacity(rows),
            opt_valid: Vec::with_capacity(rows),
            optlen_in: Vec::with_capacity(rows),
            optlen_out: Vec::with_capacity(rows),
            ret: Vec::with_capacity(rows),
            errno: Vec::with_capacity(rows),
            errno_valid: Vec::with_capacity(rows),
            flags: Vec::with_capacity(rows),
            optval_ptr: Vec::with_capacity(rows),
            optlen_ptr: Vec::with_capacity(rows),
            value_offsets,
            values: Vec::with_capacity(value_bytes),
            value_int: Vec::with_capacity(rows),
            value_int_valid: Vec::with_capacity(rows),
            attr: std::array::from_fn(|_| (Vec::with_capacity(rows), Vec::with_capacity(rows))),
            decoded: decoded.then(|| decoded::Columns::with_capacity(rows)),
            socket: SOCKET_FIELDS
                .iter()
                .map(|_| SockColumn::with_capacity(rows))
                .collect(),
        }
    }
}

/// A small dictionary of strings built per block.
#[derive(Default)]
struct Dict {
    index: HashMap<String, i32>,
    values: Vec<String>,
}

impl Dict {
    fn key(&mut self, s: &str) -> i32 {
        if let Some(&k) = self.index.get(s) {
            return k;
        }
        let k = self.values.len() as i32;
        self.index.insert(s.to_string(), k);
        self.values.push(s.to_string());
        k
    }

    fn array(&self) -> Arc<StringArray> {
        Arc::new(StringArray::from_iter_values(&self.values))
    }
}

fn nulls(valid: Vec<bool>) -> Option<NullBuffer> {
    if valid.iter().all(|&v| v) {
        None
    } else {
        Some(NullBuffer::from(valid))
    }
}

fn dict_column(keys: Vec<i32>, valid: Option<Vec<bool>>, values: &Arc<StringArray>) -> ArrayRef {
    let keys = PrimitiveArray::<Int32Type>::new(ScalarBuffer::from(keys), valid.and_then(nulls));
    // Every key was handed out by the dictionary the values come from.
    Arc::new(
        DictionaryArray::<Int32Type>::try_new(keys, values.clone() as ArrayRef)
            .expect("keys index the block's dictionary"),
    )
}

impl Builder {
    fn finish(self, dicts: &BlockDicts, drop_host: bool) -> Chunk {
        let rows = self.ts.len();
        let u32s = |v: Vec<u32>| Arc::new(UInt32Array::from(v)) as ArrayRef;
        let u64s = |v: Vec<u64>| Arc::new(UInt64Array::from(v)) as ArrayRef;
        let i32s = |v: Vec<i32>| Arc::new(Int32Array::from(v)) as ArrayRef;
        let day = self.time.first().map_or(0, |&t| day_of(t));
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(TimestampNanosecondArray::from(self.time).with_timezone("UTC")),
            u64s(self.ts),
            u64s(self.duration),
            u32s(self.pid),
            u32s(self.tid),
            u32s(self.ppid),
            u32s(self.uid),
            u32s(self.gid),
            dict_column(self.comm, None, &dicts.comm),
            u64s(self.cgroup),
            u32s(self.pid_ns),
            u32s(self.mnt_ns),
            u32s(self.cpu),
            i32s(self.fd),
            i32s(self.level),
            dict_column(self.level_name, Some(self.level_valid), &dicts.level),
            i32s(self.optname),
            dict_column(self.opt_name, Some(self.opt_valid), &dicts.opt),
            i32s(self.optlen_in),
            i32s(self.optlen_out),
            i32s(self.ret),
            dict_column(self.errno, Some(self.errno_valid), &dicts.errno),
            Arc::new(UInt16Array::from(self.flags)),
            u64s(self.optval_ptr),
            u64s(self.optlen_ptr),
            Arc::new(BinaryArray::new(
                // Offsets start at 0 and never decrease: one value per event, in order.
                OffsetBuffer::new(ScalarBuffer::from(self.value_offsets)),
                Buffer::from_vec(self.values),
                None,
            )),
            Arc::new(Int64Array::new(
                ScalarBuffer::from(self.value_int),
                nulls(self.value_int_valid),
            )),
        ];
        if !drop_host {
            columns.push(dict_column(vec![0; rows], None, &dicts.host));
        }
        columns.push(dict_column(vec![0; rows], None, &dicts.capture));
        for ((keys, valid), values) in self.attr.into_iter().zip(&dicts.attr) {
            columns.push(dict_column(keys, Some(valid), values));
        }
        match self.decoded {
            Some(d) => columns.extend(d.finish()),
            None => columns.extend(
                COLUMNS[DECODED_COLUMNS_AT..SOCKET_COLUMNS_AT]
                    .iter()
                    .map(|c| new_null_array(&c.ty.arrow(), rows)),
            ),
        }
        for (i, col) in self.socket.into_iter().enumerate() {
            let ty = COLUMNS[SOCKET_COLUMNS_AT + i].ty;
            columns.push(col.array(ty, &dicts.socket[i]));
        }
        debug_assert_eq!(columns.len(), schema(drop_host).fields().len());
        debug_assert_eq!(COLUMNS[c::TIME].name, "time");
        debug_assert_eq!(COLUMNS[c::CAPTURE_ID].name, "capture_id");
        Chunk { rows, day, columns }
    }
}

struct BlockDicts {
    comm: Arc<StringArray>,
    level: Arc<StringArray>,
    opt: Arc<StringArray>,
    errno: Arc<StringArray>,
    host: Arc<StringArray>,
    capture: Arc<StringArray>,
    attr: Vec<Arc<StringArray>>,
    /// One per socket column (empty for the numeric ones).
    socket: Vec<Arc<StringArray>>,
}

/// Per-worker scratch reused across blocks.
#[derive(Default)]
pub struct Scratch {
    verdicts: Vec<Tri>,
    facts: Vec<SiteFacts>,
    thread_comm: Vec<i32>,
    /// Per thread of the block: its attribution's keys, or `None` when its process's
    /// cgroup changed during the capture (looked up per event then).
    thread_attr: Vec<Option<AttrKeys>>,
}

type AttrKeys = [Option<i32>; ATTR_COLUMNS];

/// One block's dictionaries of attribution values.
struct AttrDicts(Vec<Dict>);

impl AttrDicts {
    fn keys(&mut self, a: &cgroup::Attribution) -> AttrKeys {
        let mut k = [None; ATTR_COLUMNS];
        for ((slot, f), d) in k.iter_mut().zip(cgroup::FIELDS).zip(&mut self.0) {
            *slot = a.get(f.0).map(|v| d.key(v));
        }
        k
    }
}

/// Converts the selected events of a decoded block into chunks: one chunk, or one per UTC day
/// when `split_by_day` (for the `date` partition). Returns no chunk when nothing is selected.
/// Without `decoded` the decoded-value columns are all null (for a reader that does not
/// want them: they are most of the work).
pub fn block_chunks(
    d: &DecodedBlock,
    ff: &FileFilter<'_>,
    file: &FileColumns,
    drop_host: bool,
    split_by_day: bool,
    decoded: bool,
    sc: &mut Scratch,
) -> Vec<Chunk> {
    let mut comm = Dict::default();
    let mut level = Dict::default();
    let mut opt = Dict::default();
    let mut errnos = Dict::default();
    let mut attr = AttrDicts((0..ATTR_COLUMNS).map(|_| Dict::default()).collect());
    let attributor = ff.attributor();
    sc.thread_comm.clear();
    sc.thread_attr.clear();
    for t in d.threads() {
        sc.thread_comm.push(comm.key(&t.comm_str()));
        let entries = attributor.processes().entries(t.tgid);
        let fixed = entries.windows(2).all(|w| w[0].cgroup == w[1].cgroup);
        sc.thread_attr
            .push(fixed.then(|| attr.keys(attributor.of(entries.first()))));
    }
    let mut sock_dicts: Vec<Dict> = SOCKET_FIELDS.iter().map(|_| Dict::default()).collect();
    sc.facts.clear();
    for s in d.sites() {
        let socket = SOCKET_FIELDS
            .iter()
            .zip(&mut sock_dicts)
            .map(
                |((name, _), dict)| match crate::socket::field(d.site_socket(s), name) {
                    FieldValue::Null => SockCell::Null,
                    FieldValue::Num(n) => SockCell::Num(n),
                    FieldValue::Str(t) => SockCell::Key(dict.key(&t)),
                },
            )
            .collect();
        let intact = s.ret >= 0 && s.flags & (FLAG_VALUE_TRUNCATED | FLAG_VALUE_UNREADABLE) == 0;
        sc.facts.push(SiteFacts {
            comm_key: sc.thread_comm[s.thread as usize],
            level_key: levels::level_name(s.level).map(|n| level.key(n)),
            opt_key: levels::option_name(s.level, s.optname).map(|n| opt.key(n)),
            errno_key: (s.ret < 0).then(|| {
                let n = s.ret.unsigned_abs() as i32;
                match errno::name(n) {
                    Some(name) => errnos.key(name),
                    None => errnos.key(&n.to_string()),
                }
            }),
            int_layout: if intact {
                int_layout(s.level, s.optname)
            } else {
                None
            },
            socket,
        });
    }
    let mut host = Dict::default();
    host.key(&file.host);
    let mut capture = Dict::default();
    capture.key(&file.capture_id);
    let dicts = BlockDicts {
        comm: comm.array(),
        level: level.array(),
        opt: opt.array(),
        errno: errnos.array(),
        host: host.array(),
        capture: capture.array(),
        attr: Vec::new(),
        socket: sock_dicts.iter().map(Dict::array).collect(),
    };
    // The rows, counted first so that each column is allocated once at its size.
    let (mut selected, mut value_bytes) = (0, 0);
    for_each_selected(d, ff, &mut sc.verdicts, |_, e| {
        selected += 1;
        value_bytes += e.value.len();
    });
    // Most blocks fall within one day: one builder, switched only when the day changes.
    let mut builders: Vec<(i64, Builder)> = Vec::new();
    let mut current = usize::MAX;
    let facts = &sc.facts;
    let thread_attr = &sc.thread_attr;
    for_each_selected(d, ff, &mut sc.verdicts, |si, e| {
        let f = &facts[si as usize];
        let wall = to_wall(e.ts_ns, file.boot_to_wall);
        let day = if split_by_day { day_of(wall) } else { 0 };
        if current == usize::MAX || builders[current].0 != day {
            current = match builders.iter().position(|(k, _)| *k == day) {
                Some(i) => i,
                None => {
                    let rows: usize = builders.iter().map(|(_, b)| b.ts.len()).sum();
                    let bytes: usize = builders.iter().map(|(_, b)| b.values.len()).sum();
                    let b = Builder::with_capacity(selected - rows, value_bytes - bytes, decoded);
                    builders.push((day, b));
                    builders.len() - 1
                }
            };
        }
        let b = &mut builders[current].1;
        b.time.push(wall);
        b.ts.push(e.ts_ns);
        b.duration.push(e.duration_ns);
        b.pid.push(e.tgid);
        b.tid.push(e.tid);
        b.ppid.push(e.ppid);
        b.uid.push(e.uid);
        b.gid.push(e.gid);
        b.comm.push(f.comm_key);
        b.cgroup.push(e.cgroup_id);
        b.pid_ns.push(e.pid_ns);
        b.mnt_ns.push(e.mnt_ns);
        b.cpu.push(e.cpu);
        b.fd.push(e.fd);
        b.level.push(e.level);
        b.level_name.push(f.level_key.unwrap_or(0));
        b.level_valid.push(f.level_key.is_some());
        b.optname.push(e.optname);
        b.opt_name.push(f.opt_key.unwrap_or(0));
        b.opt_valid.push(f.opt_key.is_some());
        b.optlen_in.push(e.optlen_in);
        b.optlen_out.push(e.optlen_out);
        b.ret.push(e.ret);
        b.errno.push(f.errno_key.unwrap_or(0));
        b.errno_valid.push(f.errno_key.is_some());
        b.flags.push(e.flags);
        b.optval_ptr.push(e.optval_ptr);
        b.optlen_ptr.push(e.optlen_ptr);
        b.values.extend_from_slice(e.value);
        // A block holds at most 64 MiB of values, so the offsets fit an i32.
        b.value_offsets.push(b.values.len() as i32);
        let vi = f.int_layout.and_then(|l| value_int(l, e.value));
        b.value_int.push(vi.unwrap_or(0));
        b.value_int_valid.push(vi.is_some());
        let keys = thread_attr[d.sites()[si as usize].thread as usize]
            .unwrap_or_else(|| attr.keys(attributor.at(e.tgid, e.ts_ns)));
        for ((keys_col, valid), k) in b.attr.iter_mut().zip(keys) {
            keys_col.push(k.unwrap_or(0));
            valid.push(k.is_some());
        }
        if let Some(d) = &mut b.decoded {
            d.push(e);
        }
        for (col, &cell) in b.socket.iter_mut().zip(&f.socket) {
            col.push(cell);
        }
    });
    let dicts = BlockDicts {
        attr: attr.0.iter().map(Dict::array).collect(),
        ..dicts
    };
    builders
        .into_iter()
        .map(|(day, b)| {
            let mut chunk = b.finish(&dicts, drop_host);
            chunk.day = day;
            chunk
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_int_takes_only_whole_integers() {
        assert_eq!(value_int(IntLayout::I32, &(-5i32).to_le_bytes()), Some(-5));
        assert_eq!(
            value_int(IntLayout::U32, &u32::MAX.to_le_bytes()),
            Some(u32::MAX as i64)
        );
        assert_eq!(value_int(IntLayout::I32, &[7]), Some(7));
        assert_eq!(value_int(IntLayout::I32, &[1, 2]), None);
        assert_eq!(value_int(IntLayout::I32, &[1, 0, 0, 0, 0]), None);
        assert_eq!(value_int(IntLayout::U64, &u64::MAX.to_le_bytes()), None);
        assert_eq!(value_int(IntLayout::U64, &42u64.to_le_bytes()), Some(42));
        assert_eq!(
            value_int(IntLayout::U32OrU64, &42u32.to_le_bytes()),
            Some(42)
        );
        assert_eq!(value_int(IntLayout::U64, &[]), None);
    }

    #[test]
    fn integer_options_come_from_the_decoder_tables() {
        // SOL_SOCKET SO_RCVBUF is an int; SOL_TCP TCP_INFO is a struct.
        assert_eq!(int_layout(1, 8), Some(IntLayout::I32));
        assert_eq!(int_layout(6, 11), None);
        assert_eq!(int_layout(12345, 1), None);
    }

    #[test]
    fn decoded_columns_follow_the_attribution() {
        assert_eq!(DECODED_COLUMNS_AT + decoded::COLUMNS, SOCKET_COLUMNS_AT);
        let names: Vec<&str> = COLUMNS[DECODED_COLUMNS_AT..SOCKET_COLUMNS_AT]
            .iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(
            names,
            [
                "value_text",
                "value_truncated",
                "tcp_info",
                "linger",
                "ucred",
                "timeval"
            ]
        );
    }

    #[test]
    fn socket_columns_are_the_socket_fields_in_order() {
        let names: Vec<&str> = COLUMNS[SOCKET_COLUMNS_AT..SOCKET_COLUMNS_AT + SOCKET_FIELDS.len()]
            .iter()
            .map(|c| c.name)
            .collect();
        let fields: Vec<&str> = SOCKET_FIELDS.iter().map(|f| f.0).collect();
        assert_eq!(names, fields);
    }

    #[test]
    fn schema_and_docs_agree() {
        let s = schema(false);
        assert_eq!(s.fields().len(), COLUMNS.len());
        assert!(schema(true).field_with_name("host").is_err());
        assert_eq!(COLUMNS[c::HOST].name, "host");
        assert_eq!(COLUMNS[c::CAPTURE_ID].name, "capture_id");
        let json = schema_json(false);
        for col in COLUMNS {
            assert!(json.contains(&format!("\"name\":\"{}\"", col.name)));
        }
    }

    #[test]
    fn days_are_utc_and_floor_before_1970() {
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(86_400_000_000_000 - 1), 0);
        assert_eq!(day_of(-1), -1);
    }
}
