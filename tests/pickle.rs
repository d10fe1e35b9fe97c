//! The checkpoint pickle reader: Python 2.7 pickles of protocols 0-2 decode to the same
//! values, and malformed or hostile input is refused with a reason, never a panic,
//! never a large allocation.

use convnet::checkpoint::pickle::loads;
use convnet::checkpoint::value::to_json;
use std::path::Path;
use std::process::Command;

fn golden(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("golden/pickle")
            .join(name),
    )
    .unwrap()
}

fn json(bytes: &[u8]) -> String {
    let mut out = String::new();
    to_json(&loads(bytes).unwrap(), &mut out);
    out
}

#[test]
fn protocols_0_1_2_decode_alike() {
    let expected = json(&golden("mixed-p2.pkl"));
    for p in ["mixed-p0.pkl", "mixed-p1.pkl"] {
        assert_eq!(json(&golden(p)), expected, "{p}");
    }
    // numpy's own sha256 of the C-order little-endian bytes (golden/pickle/README.md).
    assert!(expected.contains(r#""dtype": "f4", "shape": [2, 3], "fortran": false, "sha256": "e2c0a71510b5394df7773b63fb5f54372b84c3564e67811bde7d665be227976d""#));
    assert!(expected.contains(r#""dtype": "i8", "shape": [2, 3], "fortran": true, "sha256": "f190072c5052f4f440d4a607c25f5bced487c420806c9aab4ca5b0653e72da61""#));
    assert!(expected.contains(r#"{"$class": "__main__.Old", "$state": {"x": [1, {"$long": "1180591620717411303424"}, {"$float": "nan"}, "é", {"$bytes": "ff00"}]}}"#));
    assert!(expected.contains(r#"{"$class": "collections.OrderedDict", "$items": [["a", 1]]}"#));
    assert!(expected.contains(r#"{"$scalar": "f4", "value": 1.5}"#));
    assert!(
        expected.starts_with(r#"{"$dict": "#),
        "an int key makes the dict non-string-keyed"
    );
}

#[test]
fn every_truncation_is_refused() {
    for p in ["mixed-p0.pkl", "mixed-p1.pkl", "mixed-p2.pkl"] {
        let bytes = golden(p);
        for n in 0..bytes.len() {
            assert!(loads(&bytes[..n]).is_err(), "{p} cut at {n} was accepted");
        }
    }
}

#[test]
fn flipped_bytes_never_panic() {
    for p in ["mixed-p0.pkl", "mixed-p1.pkl", "mixed-p2.pkl"] {
        let bytes = golden(p);
        for i in 0..bytes.len() {
            for v in [0u8, 0x28, 0x2e, 0x7f, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] = v;
                let _ = loads(&b);
            }
        }
    }
}

/// Hostile and broken pickles, each with the reason it must give.
const BAD: &[(&str, &[u8], &str)] = &[
    ("os.system", b"cos\nsystem\n(S'echo hi'\ntR.", "refusing to call os.system"),
    ("eval", b"c__builtin__\neval\n(S'1'\ntR.", "refusing to call __builtin__.eval"),
    ("constructor with arguments", b"(cos\nsystem\nS'x'\no.", "refusing to construct os.system"),
    ("INST with arguments", b"(S'echo'\nios\nsystem\n.", "refusing to construct os.system"),
    ("protocol 3", b"\x80\x03K\x01.", "protocol 3"),
    ("protocol 4", b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00.", "protocol 4"),
    ("huge BINSTRING", b"T\xff\xff\xff\x7f", "truncated"),
    ("negative BINSTRING", b"T\xff\xff\xff\xff", "negative length"),
    ("huge BINUNICODE", b"X\x00\x00\x00\x70abc", "truncated"),
    ("huge LONG4", b"\x8b\xff\xff\xff\x7f", "truncated"),
    ("bad memo get", b"h\x05.", "memo key 5"),
    ("bad long memo get", b"j\xff\xff\xff\xff.", "never stored"),
    ("stack underflow", b"a.", "stack underflow"),
    ("stop on empty stack", b".", "stack underflow"),
    ("pop mark missing", b"K\x01t.", "no mark"),
    ("bad opcode", b"K\x01\xfe.", "unknown opcode 0xfe"),
    ("persistent id", b"Pabc\n.", "persistent"),
    ("extension code", b"\x82\x01.", "extension"),
    ("no STOP", b"K\x01", "truncated"),
    ("bad INT", b"Iabc\n.", "bad INT"),
    ("cycle", b"]q\x00h\x00a.", "cycle"),
    ("cycle through DUP", b"]2a.", "cycle"),
    (
        "array size mismatch",
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R(K\x01J\xff\xff\xff\x7f\x85cnumpy\ndtype\nU\x02f4K\x00K\x01\x87R(K\x03U\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89U\x04abcdtb.",
        "needs",
    ),
];

#[test]
fn hostile_and_broken_pickles_are_refused_with_a_reason() {
    for (what, bytes, reason) in BAD {
        match loads(bytes) {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => assert!(e.to_string().contains(reason), "{what}: {e}"),
        }
    }
}

#[test]
fn exponential_sharing_is_refused() {
    // l0 = [x]; l1 = [l0, l0]; ... 40 levels would print 2^40 objects in full.
    let mut p = b"\x80\x02]q\x00K\x01a".to_vec();
    for i in 1..40u8 {
        p.extend_from_slice(&[b']', b'q', i, b'(', b'h', i - 1, b'h', i - 1, b'e']);
    }
    p.push(b'.');
    let e = loads(&p).unwrap_err();
    assert!(e.to_string().contains("expands to more than"), "{e}");
}

#[test]
fn shownet_dump_json_cli() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/pickle");
    let out = Command::new(env!("CARGO_BIN_EXE_shownet"))
        .arg("-f")
        .arg(dir.join("mixed-p2.pkl"))
        .arg("--dump-json")
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["$dict"].is_array());

    let bad = std::env::temp_dir().join(format!("convnet-bad-{}.pkl", std::process::id()));
    std::fs::write(&bad, b"cos\nsystem\n(S'echo hi'\ntR.").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shownet"))
        .arg("-f")
        .arg(&bad)
        .arg("--dump-json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("refusing to call os.system"), "{err}");
}

#[test]
fn a_cycle_dropped_before_stop_does_not_matter() {
    // A list appended to itself (through DUP), popped, then the result 1: the cycle is
    // not part of the result (and is freed; cargo-fuzz's LeakSanitizer checks that).
    let v = loads(b"]2a0K\x01.").unwrap();
    assert!(matches!(&*v, convnet::checkpoint::value::PyObj::Int(1)));
}

#[test]
fn text_longs_are_canonical() {
    let mut out = String::new();
    to_json(&loads(b"L0050000000000000000001L\n.").unwrap(), &mut out);
    assert_eq!(out, r#"{"$long": "50000000000000000001"}"#);
}
