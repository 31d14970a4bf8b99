use std::time::{Duration, Instant};

use chrono::DateTime;
use serde_json::json;
use socle_ingest::codec;
use socle_ingest::{run_vectors, Codec, CodecError, CodecLimits, ModelId, UplinkInput};

fn codec(src: &str) -> Codec {
    Codec::new(ModelId::parse("test").unwrap(), src, &CodecLimits::default()).unwrap()
}

fn input(bytes: &[u8]) -> UplinkInput<'_> {
    UplinkInput { bytes, f_port: 2, recv_time: DateTime::parse_from_rfc3339("2025-03-12T07:41:05Z").unwrap().to_utc() }
}

fn decode(src: &str) -> Result<socle_ingest::Decoded, CodecError> {
    codec(src).decode_uplink(&input(&[1, 2, 3]), &CodecLimits::default())
}

#[test]
fn all_builtin_vectors_pass() {
    let codecs = codec::builtins();
    assert_eq!(codecs.len(), codec::BUILTIN.len());
    assert_eq!(codecs.len(), 8);
    for c in &codecs {
        let report = run_vectors(c);
        assert!(report.ok(), "{report}");
        assert!(report.total >= 4, "{report}");
    }
}

#[test]
fn dragino_matches_the_network_servers_object() {
    // The reference ChirpStack body carries both the bytes and ChirpStack's own decoding.
    let up = super::json("chirpstack-v4-up.json");
    let event = socle_ingest::chirpstack::parse("up", &super::bytes(&up)).unwrap();
    let socle_ingest::NetworkEvent::Uplink(u) = event else { panic!() };
    let c = codec::builtin("dragino-ldds75").unwrap();
    let d = c
        .decode_uplink(
            &UplinkInput { bytes: &u.payload, f_port: u.f_port, recv_time: u.received_at },
            &CodecLimits::default(),
        )
        .unwrap();
    assert_eq!(serde_json::Value::Object(d.data), up["object"]);
    assert!(d.warnings.is_empty());
}

#[test]
fn input_shape() {
    let d = decode(
        "function decodeUplink(i) { return {data: {n: i.bytes.length, first: i.bytes[0], port: i.fPort,
           t: i.recvTime.toISOString(), vars: typeof i.variables, isArray: Array.isArray(i.bytes)}}; }",
    )
    .unwrap();
    assert_eq!(
        serde_json::Value::Object(d.data),
        json!({"n": 3, "first": 1, "port": 2, "t": "2025-03-12T07:41:05.000Z", "vars": "object", "isArray": true})
    );
}

#[test]
fn sloppy_mode_codecs_work() {
    // Makers' decoders often assign undeclared variables.
    let d = decode("function decodeUplink(i) { x = i.bytes[2]; return {data: {x: x}, warnings: ['w']}; }").unwrap();
    assert_eq!(d.data["x"], 3);
    assert_eq!(d.warnings, ["w"]);
}

#[test]
fn each_failure_is_its_own_error() {
    let e = decode("function decodeUplink(i) { return {data: {} ").unwrap_err();
    assert!(matches!(&e, CodecError::Syntax(m) if m.contains("codec.js")), "{e}");

    let e = decode("function decodeUplink(i) { var a = null; return {data: {v: a.b}}; }").unwrap_err();
    assert!(matches!(&e, CodecError::Exception(m) if m.contains("TypeError") && m.contains("codec.js:1")), "{e}");

    let e = decode("function decodeUplink(i) { throw 'bad payload'; }").unwrap_err();
    assert_eq!(e, CodecError::Exception("bad payload".into()));

    let e = decode("throw new Error('at load');").unwrap_err();
    assert!(matches!(&e, CodecError::Exception(m) if m.contains("at load")), "{e}");

    let e = decode("function decodeUplink(i) { return {errors: ['too short', 'bad crc']}; }").unwrap_err();
    assert_eq!(e, CodecError::Reported(vec!["too short".into(), "bad crc".into()]));
    assert_eq!(e.to_string(), "codec reported errors: too short; bad crc");

    for (src, what) in [
        ("function decodeUplink(i) { return 42; }", "a number"),
        ("function decodeUplink(i) { }", "undefined"),
        ("function decodeUplink(i) { return {data: [1]}; }", "an array"),
        ("function decodeUplink(i) { return {warnings: []}; }", "no `data`"),
        ("function decodeUplink(i) { return {data: {}, errors: 'x'}; }", "`errors` is a string"),
    ] {
        let e = decode(src).unwrap_err();
        assert!(matches!(&e, CodecError::NotAnObject(m) if m.contains(what)), "{src}: {e}");
    }

    assert_eq!(decode("var decodeUplink = 3;").unwrap_err(), CodecError::MissingEntryPoint);
    assert_eq!(decode("function Decoder(bytes, port) { return {}; }").unwrap_err(), CodecError::MissingEntryPoint);

    let e = decode("function decodeUplink(i) { function f(n) { return f(n + 1) + 1; } return {data: {v: f(0)}}; }")
        .unwrap_err();
    assert!(matches!(&e, CodecError::Exception(m) if m.contains("stack")), "{e}");

    let e = decode("function decodeUplink(i) { var o = {}; o.o = o; return {data: o}; }").unwrap_err();
    assert!(matches!(&e, CodecError::Exception(m) if m.contains("circular")), "{e}");
}

#[test]
fn infinite_loop_is_stopped_quickly() {
    let limits = CodecLimits { time: Duration::from_millis(50), ..CodecLimits::default() };
    for src in [
        "function decodeUplink(i) { while (true) {} }",
        // Catching the interruption must not help.
        "function decodeUplink(i) { for (;;) { try { while (true) {} } catch (e) {} } }",
        "while (true) {}",
        "function decodeUplink(i) { return {data: {get x() { for (;;) {} }}}; }",
    ] {
        let start = Instant::now();
        let e = codec(src).decode_uplink(&input(&[1]), &limits).unwrap_err();
        let took = start.elapsed();
        assert_eq!(e, CodecError::Timeout(Duration::from_millis(50)), "{src}");
        assert!(took < Duration::from_millis(500), "{src}: stopped after {took:?}");
    }
}

#[test]
fn huge_allocation_is_stopped_and_reported() {
    for src in [
        "function decodeUplink(i) { var a = []; for (;;) a.push(new Array(1000).fill(1)); }",
        "function decodeUplink(i) { var a = new Array(1e8).fill(0); return {data: {n: a.length}}; }",
        "function decodeUplink(i) { var o = {}; for (var k = 0; ; k++) o['key' + k] = 'v' + k; }",
        "function decodeUplink(i) { var s = 'x'.repeat(1 << 20); var a = []; for (;;) a.push(s + a.length); }",
        "function decodeUplink(i) { return {data: {b: new ArrayBuffer(1e9).byteLength}}; }",
    ] {
        // A generous clock, so that on a loaded machine the memory limit, the one
        // under test, is what stops the codec (with the default 100 ms a busy CI
        // machine sometimes reached the time limit first).
        let limits = CodecLimits { time: Duration::from_secs(30), ..CodecLimits::default() };
        let e = codec(src).decode_uplink(&input(&[1]), &limits).unwrap_err();
        assert!(matches!(e, CodecError::OutOfMemory(_)), "{src}: {e}");
    }
    // The next call is unaffected.
    assert!(decode("function decodeUplink(i) { return {data: {}}; }").is_ok());
}

#[test]
fn limits_on_source_input_and_output() {
    let limits = CodecLimits::default();
    let big = "//".repeat(limits.max_source_bytes);
    assert!(matches!(Codec::new(ModelId::parse("x").unwrap(), big, &limits), Err(CodecError::SourceTooLarge { .. })));
    let c = codec("function decodeUplink(i) { return {data: {}}; }");
    assert!(matches!(c.decode_uplink(&input(&[0; 2000]), &limits), Err(CodecError::InputTooLarge { .. })));
    let e = decode("function decodeUplink(i) { return {data: {s: 'x'.repeat(100000)}}; }").unwrap_err();
    assert!(matches!(e, CodecError::OutputTooLarge { .. }), "{e}");
}

#[test]
fn calls_are_isolated() {
    // A codec cannot keep state from one call to the next.
    let c = codec("var n = 0; function decodeUplink(i) { globalThis.k = (globalThis.k || 0) + 1; n++; return {data: {n: n, k: globalThis.k}}; }");
    for _ in 0..3 {
        let d = c.decode_uplink(&input(&[]), &CodecLimits::default()).unwrap();
        assert_eq!(serde_json::Value::Object(d.data), json!({"n": 1, "k": 1}));
    }
}

#[test]
fn vector_failures_are_reported() {
    let c = codec("function decodeUplink(i) { return {data: {v: i.bytes[0]}}; }").with_vectors(
        r#"[{"description": "ok", "fPort": 1, "hex": "07", "data": {"v": 7}},
            {"description": "wrong", "fPort": 1, "hex": "07", "data": {"v": 8}},
            {"description": "expects errors", "fPort": 1, "base64": "Bw==", "errors": ["x"]},
            {"description": "no bytes", "fPort": 1, "data": {}}]"#,
    );
    let r = run_vectors(&c);
    assert_eq!((r.total, r.passed, r.failures.len()), (4, 1, 3), "{r}");
    assert!(!r.ok());
    assert!(r.to_string().contains("#1 wrong: expected data {\"v\":8}, got {\"v\":7}"), "{r}");
    let r = run_vectors(&c.clone().with_vectors("[{\"description\": 1}]"));
    assert!(!r.ok() && r.failures[0].index.is_none(), "{r}");
    assert!(!run_vectors(&codec("")).ok());
}
