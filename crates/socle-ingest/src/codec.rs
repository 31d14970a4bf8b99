//! Payload decoding with JavaScript codecs, the way network servers do it.
//!
//! Device makers publish decoders for The Things Stack and ChirpStack as one
//! JavaScript function, `decodeUplink({bytes, fPort, recvTime, variables})`,
//! returning `{data, warnings, errors}`. Socle runs the same files in an
//! embedded QuickJS ([`rquickjs`]), so a codec from a maker's repository or a
//! network-server profile works unchanged.
//!
//! A codec is untrusted code (an administrator may paste one), so each call
//! runs in a **fresh runtime and context** under a memory limit, a stack
//! limit and a deadline enforced by QuickJS's interrupt handler; the source
//! size and the result size are bounded too. A fresh runtime also means one
//! call cannot leave state (globals, counters) that changes the next one, so
//! test vectors mean what they say.
//!
//! Measured cost of one call with the Dragino codec (debug profile, the C
//! engine at opt-level 1, this 2-core machine; `codec_call_cost` below):
//! 232 µs with a fresh runtime, 211 µs reusing a runtime with a fresh
//! context. Creating the context is 125 µs of it, the runtime only 14 µs. A
//! reused runtime would save 9 % but bind the codec to one thread (QuickJS
//! checks the native stack of the thread that created it) and keep atoms
//! and shapes across devices, so each call gets its own runtime.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rquickjs::context::intrinsic;
use rquickjs::context::EvalOptions;
use rquickjs::convert::Coerced;
use rquickjs::{Array, Constructor, Context, Ctx, Function, Object, Runtime, Value};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use thiserror::Error;

/// A device model id, also the name of the codec's folder: `dragino-ldds75`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ModelId(String);

impl ModelId {
    /// 1-64 characters among `a-z`, `0-9` and `-`, starting with a letter or digit
    /// (it names a folder, so nothing that a path could misread).
    pub fn parse(s: &str) -> Result<Self, CodecError> {
        let ok = s.len() <= 64
            && s.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(CodecError::ModelId(s.chars().take(80).collect()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl TryFrom<String> for ModelId {
    type Error = CodecError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}
impl From<ModelId> for String {
    fn from(m: ModelId) -> Self {
        m.0
    }
}

/// Resource limits of one codec call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecLimits {
    /// Largest accepted codec source. Makers' decoders are 1-20 KiB.
    pub max_source_bytes: usize,
    /// QuickJS heap limit for the whole call (the empty runtime and context
    /// take about 200 KiB of it).
    pub memory_bytes: usize,
    /// QuickJS stack limit, against runaway recursion.
    pub stack_bytes: usize,
    /// Wall-clock time for loading the codec, calling it and reading the result.
    pub time: Duration,
    /// Largest payload given to a codec (LoRaWAN frames are at most 242 bytes).
    pub max_input_bytes: usize,
    /// Largest result, as JSON text.
    pub max_output_bytes: usize,
}

impl Default for CodecLimits {
    fn default() -> Self {
        Self {
            max_source_bytes: 64 * 1024,
            memory_bytes: 8 * 1024 * 1024,
            stack_bytes: 256 * 1024,
            time: Duration::from_millis(100),
            max_input_bytes: 1024,
            max_output_bytes: 64 * 1024,
        }
    }
}

/// Why a codec could not decode a payload.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum CodecError {
    #[error("invalid model id {0:?}: expected 1-64 characters among a-z, 0-9 and '-'")]
    ModelId(String),
    #[error("codec source of {size} bytes exceeds the limit of {limit} bytes")]
    SourceTooLarge { size: usize, limit: usize },
    #[error("payload of {size} bytes exceeds the limit of {limit} bytes")]
    InputTooLarge { size: usize, limit: usize },
    /// The source does not parse: the message has the line (`codec.js:12`).
    #[error("syntax error in codec: {0}")]
    Syntax(String),
    #[error("codec does not define a function decodeUplink(input)")]
    MissingEntryPoint,
    /// The codec threw (while loading or in `decodeUplink`).
    #[error("codec threw an exception: {0}")]
    Exception(String),
    /// The codec returned a non-empty `errors` list: the payload is refused by its own decoder.
    #[error("codec reported errors: {}", .0.join("; "))]
    Reported(Vec<String>),
    #[error("codec did not finish within {0:?}")]
    Timeout(Duration),
    #[error("codec exceeded its memory limit of {0} bytes")]
    OutOfMemory(usize),
    /// The result is not `{data: {...}, warnings?: [...], errors?: [...]}`.
    #[error("codec result is not usable: {0}")]
    NotAnObject(String),
    #[error("codec result of {size} bytes exceeds the limit of {limit} bytes")]
    OutputTooLarge { size: usize, limit: usize },
    /// The engine itself failed (could not create a runtime…).
    #[error("JavaScript engine error: {0}")]
    Engine(String),
}

impl CodecError {
    /// A stable code for problem details, logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ModelId(_) => "invalid-model-id",
            Self::SourceTooLarge { .. } => "codec-too-large",
            Self::InputTooLarge { .. } => "payload-too-large",
            Self::Syntax(_) => "codec-syntax",
            Self::MissingEntryPoint => "codec-no-decode-uplink",
            Self::Exception(_) => "codec-exception",
            Self::Reported(_) => "codec-reported-errors",
            Self::Timeout(_) => "codec-timeout",
            Self::OutOfMemory(_) => "codec-out-of-memory",
            Self::NotAnObject(_) => "codec-bad-result",
            Self::OutputTooLarge { .. } => "codec-result-too-large",
            Self::Engine(_) => "codec-engine",
        }
    }
}

/// What a codec receives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UplinkInput<'a> {
    pub bytes: &'a [u8],
    pub f_port: u8,
    pub recv_time: DateTime<Utc>,
}

/// What a codec returned, once checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decoded {
    pub data: Map<String, Json>,
    pub warnings: Vec<String>,
}

/// A codec: its model id, JavaScript source and optional test vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct Codec {
    model: ModelId,
    source: Arc<str>,
    vectors: Option<Arc<str>>,
}

impl Codec {
    /// Checks only the size; syntax errors surface on the first call (and in
    /// [`run_vectors`]), where they are reported with their line.
    pub fn new(model: ModelId, source: impl Into<String>, limits: &CodecLimits) -> Result<Self, CodecError> {
        let source: String = source.into();
        if source.len() > limits.max_source_bytes {
            return Err(CodecError::SourceTooLarge { size: source.len(), limit: limits.max_source_bytes });
        }
        Ok(Self { model, source: source.into(), vectors: None })
    }

    /// Attaches test vectors (the content of a `vectors.json`).
    pub fn with_vectors(mut self, vectors: impl Into<String>) -> Self {
        self.vectors = Some(Arc::from(vectors.into()));
        self
    }

    pub fn model(&self) -> &ModelId {
        &self.model
    }
    pub fn source(&self) -> &str {
        &self.source
    }
    pub fn vectors(&self) -> Option<&str> {
        self.vectors.as_deref()
    }

    /// Runs `decodeUplink` once, in a fresh runtime, within `limits`.
    pub fn decode_uplink(&self, input: &UplinkInput<'_>, limits: &CodecLimits) -> Result<Decoded, CodecError> {
        if self.source.len() > limits.max_source_bytes {
            return Err(CodecError::SourceTooLarge { size: self.source.len(), limit: limits.max_source_bytes });
        }
        if input.bytes.len() > limits.max_input_bytes {
            return Err(CodecError::InputTooLarge { size: input.bytes.len(), limit: limits.max_input_bytes });
        }
        let runtime = Runtime::new().map_err(|e| CodecError::Engine(e.to_string()))?;
        run(&runtime, &self.source, input, limits)
    }
}

/// The intrinsics a decoder may use. Left out: promises (a decoder is
/// synchronous), proxies, weak references, `performance` (a clock).
type Intrinsics = (
    intrinsic::Date,
    intrinsic::Eval,
    intrinsic::RegExpCompiler,
    intrinsic::RegExp,
    intrinsic::Json,
    intrinsic::MapSet,
    intrinsic::TypedArrays,
);

/// Where a JavaScript error happened, to tell a syntax error from a throw.
#[derive(Clone, Copy, PartialEq)]
enum Phase {
    Load,
    Call,
}

fn run(rt: &Runtime, source: &str, input: &UplinkInput<'_>, limits: &CodecLimits) -> Result<Decoded, CodecError> {
    let deadline = Instant::now() + limits.time;
    let timed_out = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&timed_out);
    // QuickJS polls this every few thousand operations; returning true raises
    // an uncatchable error, so a `while(true){}` or a `try` around it cannot
    // escape. Once past the deadline it keeps returning true, which also stops
    // any getter or `toString` we run afterwards to build the error message.
    rt.set_interrupt_handler(Some(Box::new(move || {
        let late = Instant::now() >= deadline;
        if late {
            flag.store(true, Ordering::Relaxed);
        }
        late
    })));
    rt.set_memory_limit(limits.memory_bytes);
    rt.set_max_stack_size(limits.stack_bytes);

    let result = Context::custom::<Intrinsics>(rt)
        .map_err(|e| engine_error(e, limits))
        .and_then(|ctx| ctx.with(|ctx| call(&ctx, source, input, limits)));

    rt.set_interrupt_handler(None);
    // The flag wins over whatever error the interruption surfaced as.
    if timed_out.load(Ordering::Relaxed) {
        return Err(CodecError::Timeout(limits.time));
    }
    result
}

fn engine_error(e: rquickjs::Error, limits: &CodecLimits) -> CodecError {
    match e {
        rquickjs::Error::Allocation => CodecError::OutOfMemory(limits.memory_bytes),
        other => CodecError::Engine(other.to_string()),
    }
}

fn call(ctx: &Ctx<'_>, source: &str, input: &UplinkInput<'_>, limits: &CodecLimits) -> Result<Decoded, CodecError> {
    let mut options = EvalOptions::default();
    // Makers' decoders are often sloppy-mode scripts (undeclared variables).
    options.strict = false;
    options.filename = Some("codec.js".to_owned());
    ctx.eval_with_options::<(), _>(source, options).map_err(|e| js_error(ctx, e, Phase::Load, limits))?;

    let entry: Value = ctx.globals().get("decodeUplink").map_err(|e| js_error(ctx, e, Phase::Load, limits))?;
    let Some(entry) = entry.as_function().cloned() else {
        return Err(CodecError::MissingEntryPoint);
    };
    let arg = input_object(ctx, input).map_err(|e| js_error(ctx, e, Phase::Call, limits))?;
    let result: Value = call_entry(&entry, arg).map_err(|e| js_error(ctx, e, Phase::Call, limits))?;
    let text = match ctx.json_stringify(result).map_err(|e| js_error(ctx, e, Phase::Call, limits))? {
        Some(s) => s.to_string().map_err(|e| js_error(ctx, e, Phase::Call, limits))?,
        None => return Err(CodecError::NotAnObject("decodeUplink returned undefined".into())),
    };
    if text.len() > limits.max_output_bytes {
        return Err(CodecError::OutputTooLarge { size: text.len(), limit: limits.max_output_bytes });
    }
    let value: Json = serde_json::from_str(&text).map_err(|e| CodecError::NotAnObject(e.to_string()))?;
    check_result(value)
}

fn call_entry<'js>(entry: &Function<'js>, arg: Object<'js>) -> rquickjs::Result<Value<'js>> {
    entry.call((arg,))
}

/// `{bytes: [..], fPort, recvTime: Date, variables: {}}`: the TTN and
/// ChirpStack v4 input; `variables` is ChirpStack's (device variables), empty here.
fn input_object<'js>(ctx: &Ctx<'js>, input: &UplinkInput<'_>) -> rquickjs::Result<Object<'js>> {
    let obj = Object::new(ctx.clone())?;
    let bytes = Array::new(ctx.clone())?;
    for (i, b) in input.bytes.iter().enumerate() {
        bytes.set(i, i32::from(*b))?;
    }
    obj.set("bytes", bytes)?;
    obj.set("fPort", i32::from(input.f_port))?;
    let date: Constructor = ctx.globals().get("Date")?;
    let recv_time: Value = date.construct((input.recv_time.timestamp_millis() as f64,))?;
    obj.set("recvTime", recv_time)?;
    obj.set("variables", Object::new(ctx.clone())?)?;
    Ok(obj)
}

fn js_error(ctx: &Ctx<'_>, e: rquickjs::Error, phase: Phase, limits: &CodecLimits) -> CodecError {
    if !e.is_exception() {
        return engine_error(e, limits);
    }
    let thrown = ctx.catch();
    // QuickJS throws `null` when it cannot even allocate the error object.
    if thrown.is_null() {
        return CodecError::OutOfMemory(limits.memory_bytes);
    }
    let (name, message, stack) = match thrown.as_object() {
        Some(obj) if thrown.is_error() => (
            obj.get::<_, Option<Coerced<String>>>("name").ok().flatten().map(|c| c.0),
            obj.get::<_, Option<Coerced<String>>>("message").ok().flatten().map(|c| c.0),
            obj.get::<_, Option<Coerced<String>>>("stack").ok().flatten().map(|c| c.0),
        ),
        _ => (None, thrown.get::<Coerced<String>>().ok().map(|c| c.0), None),
    };
    let name = name.unwrap_or_default();
    let message = message.unwrap_or_else(|| "(no message)".to_owned());
    if name == "InternalError" && message == "out of memory" {
        return CodecError::OutOfMemory(limits.memory_bytes);
    }
    // The first stack frame gives the line: "at decodeUplink (codec.js:12:9)".
    let place = stack
        .as_deref()
        .and_then(|s| s.lines().map(str::trim).find(|l| l.starts_with("at ")))
        .map(|l| format!(" ({l})"))
        .unwrap_or_default();
    let text: String = format!("{}{message}{place}", if name.is_empty() { String::new() } else { format!("{name}: ") })
        .chars()
        .take(500)
        .collect();
    if phase == Phase::Load && name == "SyntaxError" {
        CodecError::Syntax(text)
    } else {
        CodecError::Exception(text)
    }
}

fn kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn strings(field: &str, v: Option<Json>) -> Result<Vec<String>, CodecError> {
    match v {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Array(items)) => Ok(items
            .into_iter()
            .map(|i| match i {
                Json::String(s) => s,
                other => other.to_string(),
            })
            .collect()),
        Some(other) => Err(CodecError::NotAnObject(format!("`{field}` is {}, expected an array", kind(&other)))),
    }
}

fn check_result(value: Json) -> Result<Decoded, CodecError> {
    let Json::Object(mut obj) = value else {
        return Err(CodecError::NotAnObject(format!(
            "decodeUplink returned {}, expected {{data, warnings, errors}}",
            kind(&value)
        )));
    };
    let errors = strings("errors", obj.remove("errors"))?;
    if !errors.is_empty() {
        return Err(CodecError::Reported(errors));
    }
    let warnings = strings("warnings", obj.remove("warnings"))?;
    match obj.remove("data") {
        Some(Json::Object(data)) => Ok(Decoded { data, warnings }),
        None => Err(CodecError::NotAnObject("the result has no `data`".into())),
        Some(other) => Err(CodecError::NotAnObject(format!("`data` is {}, expected an object", kind(&other)))),
    }
}

// ---- built-in codecs -------------------------------------------------------

macro_rules! builtin {
    ($($model:literal),* $(,)?) => {
        /// The codecs shipped with Socle: `(model id, codec.js, vectors.json)`.
        pub const BUILTIN: &[(&str, &str, &str)] = &[
            $(($model,
               include_str!(concat!("../codecs/", $model, "/codec.js")),
               include_str!(concat!("../codecs/", $model, "/vectors.json")))),*
        ];
    };
}

builtin!(
    "dragino-ldds75",
    "socle-water-meter",
    "socle-energy-meter",
    "socle-th-indoor",
    "socle-river-level",
    "socle-air-quality",
    "socle-parking",
    "socle-streetlight",
);

/// A built-in codec by model id, with its vectors.
pub fn builtin(model: &str) -> Option<Codec> {
    BUILTIN.iter().find(|(m, _, _)| *m == model).and_then(|(m, source, vectors)| {
        let model = ModelId::parse(m).ok()?;
        Some(Codec::new(model, *source, &CodecLimits::default()).ok()?.with_vectors(*vectors))
    })
}

/// All built-in codecs.
pub fn builtins() -> Vec<Codec> {
    BUILTIN.iter().filter_map(|(m, _, _)| builtin(m)).collect()
}

// ---- test vectors ------------------------------------------------------------

/// One test vector of a `vectors.json` (an array of these).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Vector {
    description: String,
    f_port: u8,
    #[serde(default)]
    hex: Option<String>,
    #[serde(default)]
    base64: Option<String>,
    #[serde(default)]
    recv_time: Option<DateTime<Utc>>,
    /// Expected `data` (numbers compared with a relative tolerance of 1e-9).
    #[serde(default)]
    data: Option<Map<String, Json>>,
    /// Expected warnings, exactly.
    #[serde(default)]
    warnings: Option<Vec<String>>,
    /// Expected reported errors: each must appear in one of the codec's errors.
    #[serde(default)]
    errors: Option<Vec<String>>,
}

/// The outcome of a codec's test vectors.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub model: String,
    pub total: usize,
    pub passed: usize,
    pub failures: Vec<VectorFailure>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VectorFailure {
    /// Position in `vectors.json`; `None` when the file itself is unusable.
    pub index: Option<usize>,
    pub description: String,
    pub reason: String,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.failures.is_empty() && self.passed == self.total && self.total > 0
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {}/{} vectors passed", self.model, self.passed, self.total)?;
        for fail in &self.failures {
            match fail.index {
                Some(i) => writeln!(f, "  #{i} {}: {}", fail.description, fail.reason)?,
                None => writeln!(f, "  {}: {}", fail.description, fail.reason)?,
            }
        }
        Ok(())
    }
}

/// Runs a codec's vectors with the default limits. A codec without vectors,
/// or with an unreadable `vectors.json`, fails.
pub fn run_vectors(codec: &Codec) -> Report {
    let mut report = Report { model: codec.model.to_string(), total: 0, passed: 0, failures: Vec::new() };
    let file_failure = |reason: String| VectorFailure { index: None, description: "vectors.json".into(), reason };
    let Some(text) = codec.vectors() else {
        report.failures.push(file_failure("no test vectors".into()));
        return report;
    };
    let vectors: Vec<Vector> = match crate::json::parse_body(text.as_bytes()) {
        Ok(v) => v,
        Err(e) => {
            report.failures.push(file_failure(e.to_string()));
            return report;
        }
    };
    if vectors.is_empty() {
        report.failures.push(file_failure("no test vectors".into()));
    }
    report.total = vectors.len();
    let limits = CodecLimits::default();
    for (i, v) in vectors.into_iter().enumerate() {
        match check_vector(codec, &v, &limits) {
            Ok(()) => report.passed += 1,
            Err(reason) => report.failures.push(VectorFailure { index: Some(i), description: v.description, reason }),
        }
    }
    report
}

fn check_vector(codec: &Codec, v: &Vector, limits: &CodecLimits) -> Result<(), String> {
    let bytes = match (&v.hex, &v.base64) {
        (Some(h), None) => hex_bytes(h)?,
        (None, Some(b)) => crate::json::base64_bytes("base64", b).map_err(|e| e.to_string())?,
        _ => return Err("give exactly one of `hex` and `base64`".into()),
    };
    let recv_time = v.recv_time.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    let outcome = codec.decode_uplink(&UplinkInput { bytes: &bytes, f_port: v.f_port, recv_time }, limits);
    match (&v.errors, outcome) {
        (Some(expected), Err(CodecError::Reported(got))) => {
            match expected.iter().find(|e| !got.iter().any(|g| g.contains(e.as_str()))) {
                Some(missing) => Err(format!("expected an error containing {missing:?}, got {got:?}")),
                None => Ok(()),
            }
        }
        (Some(_), Ok(d)) => Err(format!("expected errors, got data {}", Json::Object(d.data))),
        (_, Err(e)) => Err(e.to_string()),
        (None, Ok(d)) => {
            if let Some(expected) = &v.data {
                let (e, g) = (Json::Object(expected.clone()), Json::Object(d.data));
                if !json_close(&e, &g) {
                    return Err(format!("expected data {e}, got {g}"));
                }
            }
            if let Some(expected) = &v.warnings {
                if *expected != d.warnings {
                    return Err(format!("expected warnings {expected:?}, got {:?}", d.warnings));
                }
            }
            Ok(())
        }
    }
}

fn hex_bytes(s: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("hex {s:?} has an odd number of digits"));
    }
    digits
        .chunks_exact(2)
        .map(|p| {
            std::str::from_utf8(p)
                .ok()
                .and_then(|t| u8::from_str_radix(t, 16).ok())
                .ok_or_else(|| format!("hex {s:?} has a non-hexadecimal digit"))
        })
        .collect()
}

/// JSON equality with a relative tolerance on numbers, so a vector can say
/// `3.338` for a computed `3338 / 1000`.
fn json_close(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
            _ => x == y,
        },
        (Json::Array(x), Json::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_close(x, y)),
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_close(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_json_close() {
        assert_eq!(hex_bytes("0d0A 07e9").unwrap(), [13, 10, 7, 233]);
        assert!(hex_bytes("0d0").is_err());
        assert!(hex_bytes("zz").is_err());
        assert!(json_close(&serde_json::json!({"a": [1.0, "x"]}), &serde_json::json!({"a": [1, "x"]})));
        assert!(!json_close(&serde_json::json!({"a": 1}), &serde_json::json!({"a": 1, "b": 2})));
    }

    fn is_send_sync<T: Send + Sync>() {}

    #[test]
    fn codecs_can_be_shared_between_threads() {
        is_send_sync::<Codec>();
    }

    /// Prints the cost of one call and of its parts; run with
    /// `cargo test -p socle-ingest --lib codec_call_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "measurement, not a check"]
    fn codec_call_cost() {
        let codec = builtin("dragino-ldds75").expect("shipped");
        let bytes = [0x0d, 0x0a, 0x07, 0xe9, 0, 0, 0, 1];
        let input = UplinkInput { bytes: &bytes, f_port: 2, recv_time: DateTime::<Utc>::UNIX_EPOCH };
        let limits = CodecLimits::default();
        let n = 1000;
        let per_call = |f: &dyn Fn()| {
            f();
            let start = Instant::now();
            for _ in 0..n {
                f();
            }
            start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
        };
        let fresh = per_call(&|| {
            codec.decode_uplink(&input, &limits).expect("decodes");
        });
        let rt = Runtime::new().expect("runtime");
        let reused = per_call(&|| {
            run(&rt, codec.source(), &input, &limits).expect("decodes");
        });
        let runtime_only = per_call(&|| {
            Runtime::new().expect("runtime");
        });
        let context_only = per_call(&|| {
            Context::custom::<Intrinsics>(&rt).expect("context");
        });
        let full_context = per_call(&|| {
            Context::full(&rt).expect("context");
        });
        let timeout = Instant::now();
        let looping = Codec::new(codec.model().clone(), "while (true) {}", &limits).expect("small");
        assert!(matches!(looping.decode_uplink(&input, &limits), Err(CodecError::Timeout(_))));
        let timeout = timeout.elapsed();
        let oom = Instant::now();
        let greedy =
            Codec::new(codec.model().clone(), "var a = []; for (;;) a.push([1, 2, 3]);", &limits).expect("small");
        assert!(matches!(greedy.decode_uplink(&input, &limits), Err(CodecError::OutOfMemory(_))));
        let oom = oom.elapsed();
        println!(
            "one call: fresh runtime {fresh:.0} µs, reused runtime {reused:.0} µs \
             (new runtime {runtime_only:.0} µs, new context {context_only:.0} µs, full context {full_context:.0} µs); \
             infinite loop stopped after {timeout:?} (limit {:?}), out of memory after {oom:?}",
            limits.time
        );
    }

    #[test]
    fn model_ids() {
        assert!(ModelId::parse("dragino-ldds75").is_ok());
        for bad in ["", "-x", "Dragino", "a/b", "../x", &"a".repeat(65)] {
            assert!(ModelId::parse(bad).is_err(), "{bad}");
        }
    }
}
